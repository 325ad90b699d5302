import { describe, expect, it } from 'vitest';
import { NotFoundError, ValidationError } from '@/server/errors';
import { parseUploadId } from '@/server/uploads/handle-request';

const base = 'http://127.0.0.1/api/v1/uploads';

describe('parseUploadId', () => {
  it('returns null for the collection URL', () => {
    expect(parseUploadId(base)).toBeNull();
    expect(parseUploadId(`${base}/`)).toBeNull();
  });

  it('accepts 32 lowercase hex characters', () => {
    expect(parseUploadId(`${base}/0123456789abcdef0123456789abcdef`)).toBe('0123456789abcdef0123456789abcdef');
  });

  it.each(['..%2Foutside.txt', '..%5Coutside.txt', 'x%00y', '0123456789ABCDEF0123456789ABCDEF', 'a/b'])('rejects %s as not found', (id) => {
    expect(() => parseUploadId(`${base}/${id}`)).toThrow(NotFoundError);
  });

  it('rejects a malformed percent escape as invalid', () => {
    expect(() => parseUploadId(`${base}/%`)).toThrow(ValidationError);
    expect(() => parseUploadId(`${base}/abc%zz`)).toThrow(ValidationError);
  });
});
