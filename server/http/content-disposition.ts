/**
 * Content-Disposition header values for downloads (RFC 6266) with UTF-8 file names (RFC 8187).
 */

export type DispositionType = 'attachment' | 'inline';

// C0 controls, DEL and C1 controls.
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/g;
const LONE_SURROGATES = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
// Characters that encodeURIComponent leaves alone but RFC 8187 attr-char does not allow.
const NON_ATTR_CHARACTERS = /['()*]/g;

/**
 * Builds a Content-Disposition value that suggests `filename` to the user agent, as
 * `attachment; filename="<fallback>"; filename*=UTF-8''<percent-encoded UTF-8>`.
 *
 * The `filename` parameter is an ASCII fallback for user agents without RFC 8187 support: each
 * character outside printable ASCII, and each `"` and `\`, becomes `_`. `filename*` carries the exact
 * name in UTF-8, percent-encoding every byte that is not an RFC 8187 attr-char. RFC 6266 §4.3 has user
 * agents prefer `filename*` when both are present.
 *
 * Control characters (CR and LF among them) become `_` in both parameters, and lone UTF-16 surrogates
 * become U+FFFD in `filename*`, so the value is always printable ASCII. An empty name yields the bare
 * disposition type.
 */
export function contentDisposition(filename: string, type: DispositionType = 'attachment'): string {
  const name = filename.replace(CONTROL_CHARACTERS, '_');
  if (name === '') return type;

  const fallback = Array.from(name, toFallbackCharacter).join('');
  const encoded = encodeURIComponent(name.replace(LONE_SURROGATES, '\uFFFD')).replace(
    NON_ATTR_CHARACTERS,
    (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`,
  );

  return `${type}; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

/** Maps one code point to itself if it may stand in a quoted-string unescaped, to `_` otherwise. */
function toFallbackCharacter(character: string): string {
  const isPrintableAscii = character >= ' ' && character <= '~';
  return isPrintableAscii && character !== '"' && character !== '\\' ? character : '_';
}
