/**
 * Picks JSON when the Accept header prefers application/json (or any +json type) over application/cbor,
 * and the given default otherwise. Quality values are honoured; wildcards fall back to the default.
 */
export function prefersJson(request: Request, fallback: 'json' | 'cbor'): boolean {
  const accept = request.headers.get('accept');
  if (!accept) return fallback === 'json';
  let json = -1;
  let cbor = -1;
  for (const item of accept.split(',')) {
    const [type, ...params] = item.trim().toLowerCase().split(';');
    const qParam = params.map((param) => param.trim()).find((param) => param.startsWith('q='));
    const quality = qParam ? Number(qParam.slice(2)) : 1;
    if (!Number.isFinite(quality)) continue;
    if (type === 'application/json' || /^application\/[\w.-]+\+json$/.test(type)) json = Math.max(json, quality);
    if (type === 'application/cbor') cbor = Math.max(cbor, quality);
  }
  if (json <= 0 && cbor <= 0) return fallback === 'json';
  return json > cbor;
}
