import { expect } from 'vitest';
import type { ApiClient } from './client';

function base64(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64');
}

/** Creates a tus upload of `length` bytes for a file of the package, asserts 201 and returns the upload's path below /api/v1. */
export async function createTusUpload(api: ApiClient, packageId: string, relativePath: string, length: number): Promise<string> {
  const created = await api.request('POST', '/uploads', {
    headers: {
      'Tus-Resumable': '1.0.0',
      'Upload-Length': String(length),
      'Upload-Metadata': `package_id ${base64(packageId)},relative_path ${base64(relativePath)}`,
    },
  });
  expect(created.status).toBe(201);
  return new URL(created.headers.get('location')!).pathname.replace(/^\/api\/v1/, '');
}
