/**
 * Range header parsing for byte downloads (RFC 9110 §14).
 */
import parseRange from 'range-parser';
import { RangeNotSatisfiableError } from '../errors';

/** An inclusive byte range: `{ start: 0, end: 0 }` is the first byte. */
export interface ByteRange {
  start: number;
  end: number;
}

export type RangeSelection = { kind: 'full' } | { kind: 'ranges'; ranges: ByteRange[] };

/**
 * Maximum number of ranges served in one multipart response, counted after overlapping and adjacent
 * ranges are merged. RFC 9110 §14.2 lets a server ignore a Range header that requests many small ranges,
 * because such a request costs the server far more than the bytes it returns. A longer list is ignored
 * and the whole file is sent.
 */
export const MAX_RANGES = 100;

// One range-spec of RFC 9110 §14.1.1: `first-last`, `first-` or `-suffix`, with optional whitespace
// around it from the list syntax.
const RANGE_SPEC = /^[ \t]*(?:\d+-\d*|-\d+)[ \t]*$/;
const INT_RANGE = /^[ \t]*(\d+)-(\d+)[ \t]*$/;
const SUFFIX_RANGE = /^[ \t]*-(\d+)[ \t]*$/;

const FULL: RangeSelection = { kind: 'full' };

/**
 * Parses a Range header against a representation of `size` bytes.
 *
 * Returns `full` when the whole representation should be sent:
 * - no header, a unit other than `bytes`, or a header that is not a valid `bytes` ranges-specifier
 *   (RFC 9110 §14.2: a server MAY ignore a Range header with an invalid ranges-specifier). A range whose
 *   last position is below its first is invalid too (§14.1.1);
 * - `size` is 0. RFC 9110 §14.2 lets a server ignore Range when the representation has no content, and
 *   §14.1.2 makes a suffix range satisfiable even then, yet no Content-Range can describe its empty
 *   result;
 * - more than MAX_RANGES ranges remain after merging.
 *
 * Otherwise returns the satisfiable ranges in request order, clipped to the representation, with
 * overlapping and adjacent ranges merged. Unsatisfiable ranges in the set are dropped.
 *
 * Throws RangeNotSatisfiableError (416, with a Content-Range that gives only the size) when the header is
 * valid but no range in it is satisfiable: every first position is at or past `size`, or a suffix length
 * is 0.
 */
export function parseRangeHeader(header: string | null, size: number): RangeSelection {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new RangeError(`A representation size must be a non-negative safe integer, got ${size}.`);
  }
  if (header === null || size === 0) return FULL;

  const separator = header.indexOf('=');
  if (separator === -1) return FULL;

  // Range units are case-insensitive (RFC 9110 §14.1).
  const unit = header.slice(0, separator).toLowerCase();
  if (unit !== 'bytes') return FULL;

  const specs = header.slice(separator + 1).split(',');
  if (!specs.every(isValidRangeSpec)) return FULL;

  const normalized = specs.map((spec) => clampSuffix(spec, size)).join(',');
  const ranges = parseRange(size, `bytes=${normalized}`, { combine: true });
  if (ranges === -2) return FULL;
  if (ranges === -1) throw new RangeNotSatisfiableError(size);
  if (ranges.length > MAX_RANGES) return FULL;

  return { kind: 'ranges', ranges: ranges.map(({ start, end }) => ({ start, end })) };
}

/**
 * Rewrites a suffix range longer than the representation as `0-`. RFC 9110 §14.1.1 states that such a
 * range selects the whole representation, but range-parser 1.3.0 computes a negative start for it and
 * drops it as unsatisfiable.
 */
function clampSuffix(spec: string, size: number): string {
  const suffix = SUFFIX_RANGE.exec(spec);
  if (suffix === null) return spec;
  return Number(suffix[1]) > size ? '0-' : spec;
}

function isValidRangeSpec(spec: string): boolean {
  if (!RANGE_SPEC.test(spec)) return false;

  const bounds = INT_RANGE.exec(spec);
  if (bounds === null) return true;
  return Number(bounds[2]) >= Number(bounds[1]);
}
