/**
 * Conditional requests on GET and HEAD (RFC 9110 §13) for representations with a strong ETag and an
 * optional Last-Modified date.
 */
import { DomainError } from '../errors';

/** 412: an If-Match or If-Unmodified-Since condition is false (RFC 9110 §13.1.1, §13.1.4). */
export class PreconditionFailedError extends DomainError {
  override name = 'PreconditionFailedError';
  constructor(header: 'If-Match' | 'If-Unmodified-Since') {
    super(412, 'Precondition failed', `The ${header} condition does not hold for the current representation.`);
  }
}

/** One entity-tag of RFC 9110 §8.8.3. `opaque` keeps its double quotes, as in `"abc"`. */
interface EntityTag {
  weak: boolean;
  opaque: string;
}

// entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, where etagc is any visible character but DQUOTE, or
// obs-text (RFC 9110 §8.8.3).
const STRONG_ETAG = /^"[\x21\x23-\x7e\x80-\xff]*"$/;
const ENTITY_TAG_AT = /(W\/)?("[\x21\x23-\x7e\x80-\xff]*")/y;
const LIST_SEPARATOR_AT = /[ \t]*(?:,[ \t]*)*/y;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH = `(${MONTHS.join('|')})`;
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
const IMF_FIXDATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
const RFC850_DATE = new RegExp(
  `^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`,
);
const ASCTIME_DATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`);

/**
 * Evaluates If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since for a GET or HEAD in the
 * order RFC 9110 §13.2.2 sets. `etag` is the representation's strong ETag with its quotes.
 *
 * Returns `not_modified` when the caller must respond with 304, `proceed` otherwise. If-Range is not evaluated
 * here because it only decides whether a Range header applies (see `ifRangeAllowsPartial`).
 * Throws PreconditionFailedError (412) when If-Match or If-Unmodified-Since is false.
 *
 * The date conditions apply only when `lastModified` is given. RFC 9110 makes a recipient ignore them
 * when the resource has no modification date, when If-Match or If-None-Match is present, or when the
 * value is not a valid HTTP-date.
 */
export function evaluatePreconditions(
  headers: Headers,
  validators: { etag: string; lastModified?: Date },
): 'proceed' | 'not_modified' {
  assertStrongEtag(validators.etag);
  const lastModifiedSeconds = validators.lastModified ? toEpochSeconds(validators.lastModified) : null;

  const ifMatch = headers.get('if-match');
  if (ifMatch !== null) {
    // §13.1.1: true when the value is "*" or lists a tag that matches by strong comparison.
    const tags = parseEntityTagList(ifMatch);
    const matched = tags === '*' || (tags !== null && tags.some((tag) => matchesStrongly(tag, validators.etag)));
    if (!matched) throw new PreconditionFailedError('If-Match');
  } else {
    // §13.1.4: false when the representation changed after the given date.
    const since = parseSingleHttpDate(headers.get('if-unmodified-since'));
    if (since !== null && lastModifiedSeconds !== null && lastModifiedSeconds > since) {
      throw new PreconditionFailedError('If-Unmodified-Since');
    }
  }

  const ifNoneMatch = headers.get('if-none-match');
  if (ifNoneMatch !== null) {
    return etagMatches(ifNoneMatch, validators.etag) ? 'not_modified' : 'proceed';
  }

  // §13.1.3: false (so 304) when the representation has not changed since the given date.
  const since = parseSingleHttpDate(headers.get('if-modified-since'));
  if (since !== null && lastModifiedSeconds !== null && lastModifiedSeconds <= since) return 'not_modified';
  return 'proceed';
}

/**
 * Reports whether an If-None-Match value matches `etag` (RFC 9110 §13.1.2). The comparison is weak, so
 * `W/"x"` matches `"x"`, and `*` matches any current representation. A missing or unparsable value
 * matches nothing, so the caller sends the full response.
 */
export function etagMatches(ifNoneMatchHeader: string | null, etag: string): boolean {
  assertStrongEtag(etag);
  if (ifNoneMatchHeader === null) return false;

  const tags = parseEntityTagList(ifNoneMatchHeader);
  if (tags === '*') return true;
  if (tags === null) return false;
  return tags.some((tag) => tag.opaque === etag);
}

/**
 * Reports whether a Range header may be honoured given the request's If-Range value (RFC 9110 §13.1.5).
 *
 * - No If-Range: true.
 * - An entity-tag: true only if it is strong and equal to `etag`. A weak tag never matches, because a
 *   partial response must not be combined with bytes of another representation.
 * - An HTTP-date: true only if `lastModified` is given and equals it to the second.
 * - Anything else: false, so the caller ignores Range and sends the whole representation.
 */
export function ifRangeAllowsPartial(ifRangeHeader: string | null, etag: string, lastModified?: Date): boolean {
  assertStrongEtag(etag);
  if (ifRangeHeader === null) return true;

  const value = ifRangeHeader.trim();
  // §13.1.5: a valid entity-tag starts with DQUOTE or W/, which no valid HTTP-date does.
  if (value.startsWith('"') || value.startsWith('W/')) {
    ENTITY_TAG_AT.lastIndex = 0;
    const tag = ENTITY_TAG_AT.exec(value);
    if (tag === null || tag[0].length !== value.length) return false;
    return matchesStrongly({ weak: tag[1] !== undefined, opaque: tag[2] }, etag);
  }

  const date = parseHttpDate(value);
  if (date === null || lastModified === undefined) return false;
  return toEpochSeconds(date) === toEpochSeconds(lastModified);
}

/**
 * Parses an HTTP-date (RFC 9110 §5.6.7) in any of its three formats: IMF-fixdate
 * (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form (`Sunday, 06-Nov-94 08:49:37 GMT`) and
 * asctime (`Sun Nov  6 08:49:37 1994`). All three are UTC. Returns null for anything else, including
 * impossible dates such as 31 February.
 */
export function parseHttpDate(value: string): Date | null {
  const text = value.trim();

  let match = IMF_FIXDATE.exec(text);
  if (match) return buildUtcDate(Number(match[3]), match[2], Number(match[1]), match.slice(4, 7));

  match = RFC850_DATE.exec(text);
  if (match) return buildUtcDate(expandTwoDigitYear(Number(match[3])), match[2], Number(match[1]), match.slice(4, 7));

  match = ASCTIME_DATE.exec(text);
  if (match) return buildUtcDate(Number(match[6]), match[1], Number(match[2].trim()), match.slice(3, 6));

  return null;
}

/** Formats a date as an IMF-fixdate, the form RFC 9110 §5.6.7 requires senders to use. */
export function formatHttpDate(date: Date): string {
  return date.toUTCString();
}

/**
 * Parses `*` or a comma-separated list of entity-tags. Returns null when the value is neither, so the
 * caller can treat a malformed list as matching nothing.
 */
function parseEntityTagList(value: string): '*' | EntityTag[] | null {
  if (value.trim() === '*') return '*';

  const tags: EntityTag[] = [];
  let position = 0;
  while (true) {
    LIST_SEPARATOR_AT.lastIndex = position;
    const separator = LIST_SEPARATOR_AT.exec(value)?.[0] ?? '';
    position += separator.length;
    if (position === value.length) break;

    // Every element after the first must follow a comma.
    if (tags.length > 0 && !separator.includes(',')) return null;

    ENTITY_TAG_AT.lastIndex = position;
    const tag = ENTITY_TAG_AT.exec(value);
    if (tag === null) return null;
    tags.push({ weak: tag[1] !== undefined, opaque: tag[2] });
    position = ENTITY_TAG_AT.lastIndex;
  }

  return tags.length > 0 ? tags : null;
}

/** Strong comparison (RFC 9110 §8.8.3.2): both tags strong and character for character equal. */
function matchesStrongly(tag: EntityTag, etag: string): boolean {
  return !tag.weak && tag.opaque === etag;
}

function assertStrongEtag(etag: string): void {
  if (!STRONG_ETAG.test(etag)) {
    throw new TypeError(`An ETag must be a strong entity-tag in double quotes, got ${JSON.stringify(etag)}.`);
  }
}

/**
 * Parses a date condition header. RFC 9110 §13.1.3 and §13.1.4 make a recipient ignore a value that is
 * not one valid HTTP-date, which this expresses as null.
 */
function parseSingleHttpDate(value: string | null): number | null {
  if (value === null) return null;
  const date = parseHttpDate(value);
  return date === null ? null : toEpochSeconds(date);
}

/** HTTP-dates have a resolution of one second, so Last-Modified is compared at that resolution. */
function toEpochSeconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

function buildUtcDate(year: number, monthName: string, day: number, time: string[]): Date | null {
  const month = MONTHS.indexOf(monthName);
  const [hours, minutes, seconds] = time.map(Number);
  if (hours > 23 || minutes > 59 || seconds > 60) return null;

  // setUTCFullYear, unlike Date.UTC, keeps years 0-99 as written.
  const midnight = new Date(0);
  midnight.setUTCFullYear(year, month, day);
  const isRealDay =
    midnight.getUTCFullYear() === year && midnight.getUTCMonth() === month && midnight.getUTCDate() === day;
  if (!isRealDay) return null;

  // A leap second (60) becomes the first second of the next minute, since Date cannot hold it.
  return new Date(midnight.getTime() + ((hours * 60 + minutes) * 60 + seconds) * 1000);
}

/**
 * RFC 9110 §5.6.7: a two-digit year that would lie more than 50 years in the future means the most
 * recent past year with those digits.
 */
function expandTwoDigitYear(twoDigits: number): number {
  const currentYear = new Date().getUTCFullYear();
  let year = currentYear - (currentYear % 100) + twoDigits;
  if (year > currentYear + 50) year -= 100;
  return year;
}
