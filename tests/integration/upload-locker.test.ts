import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDomainError } from '@/server/errors';
import { PostgresLocker } from '@/server/uploads/locker';
import { createTestDatabase, ON_POSTGRES } from '../support/database';

// The PostgreSQL upload locker holds one pooled connection per locked upload, so its pool size is the
// number of uploads one server process can write at once.
describe.skipIf(!ON_POSTGRES)('PostgresLocker', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let locker: PostgresLocker;
  const warnings: unknown[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    // One connection, and a short wait for it, so the test need not hold 20 locks for 10 s.
    locker = new PostgresLocker(database.url, { warn: (...args: unknown[]) => warnings.push(args) }, 1, 300);
  });

  afterAll(async () => {
    await locker?.close();
    await database?.drop();
  });

  it('answers 503 when every connection holds a lock', async () => {
    const first = locker.newLock('upload-a');
    await first.lock(new AbortController().signal, () => {});

    const startedAt = performance.now();
    const error = await locker
      .newLock('upload-b')
      .lock(new AbortController().signal, () => {})
      .then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(250);
    expect(isDomainError(error)).toBe(true);
    if (!isDomainError(error)) return;
    expect(error.status).toBe(503);
    expect(error.title).toBe('Upload locks exhausted');
    expect(error.headers['Retry-After']).toBe('5');

    // Once the first upload's lock is released, the other upload can be locked.
    await first.unlock();
    const second = locker.newLock('upload-b');
    await second.lock(new AbortController().signal, () => {});
    await second.unlock();
    expect(warnings).toEqual([]);
  });
});
