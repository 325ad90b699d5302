import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, problemOf } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

// Small files that requests add to one package at the same time are recorded together, several per
// transaction. Each request must still get its own response, and the log one event per stored file.

let environment: TestEnvironment;
let server: TestServer;
let api: ApiClient;

beforeAll(async () => {
  environment = await createTestEnvironment({ SCRUB_INTERVAL_SECONDS: '0', SWEEP_INTERVAL_SECONDS: '0' });
  server = await startServer(environment);
  api = new ApiClient(server.url, environment.adminToken);
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
});

const ROUNDS = 10;

describe('files recorded together', () => {
  it('rejects clashing paths within a batch', async () => {
    const pkg = await api.createPackage({ name: 'batched-clashes' });
    const { events: before } = await api.events(0);
    const startSequence = before.length === 0 ? 0 : before[before.length - 1].sequence;
    for (let round = 0; round < ROUNDS; round += 1) {
      // The first request starts a batch alone; the others arrive while it runs and form the next one.
      const [first, ...rest] = await Promise.all([
        api.putFile(pkg.id, `r${round}/first.bin`, `first ${round}`),
        api.putFile(pkg.id, `r${round}/same.bin`, `same A ${round}`),
        api.putFile(pkg.id, `r${round}/same.bin`, `same B ${round}`),
        api.putFile(pkg.id, `r${round}/dir`, `file ${round}`),
        api.putFile(pkg.id, `r${round}/dir/inside.bin`, `inside ${round}`),
        api.putFile(pkg.id, `r${round}/copy-1.bin`, `shared content ${round}`),
        api.putFile(pkg.id, `r${round}/copy-2.bin`, `shared content ${round}`),
      ]);
      expect(first.status).toBe(201);
      const [sameA, sameB, dir, inside, copy1, copy2] = rest;
      expect([sameA.status, sameB.status].sort(), `round ${round}`).toEqual([201, 409]);
      expect([dir.status, inside.status].sort(), `round ${round}`).toEqual([201, 409]);
      for (const response of [sameA, sameB, dir, inside].filter((candidate) => candidate.status === 409)) {
        expect((await problemOf(response)).status).toBe(409);
      }
      expect([copy1.status, copy2.status]).toEqual([201, 201]);
      const [record1, record2] = [await copy1.json(), await copy2.json()];
      expect(record1.content_address).toBe(record2.content_address);
      expect(record1.storage).toEqual(record2.storage);
      expect(record1.storage).toHaveLength(1);
    }

    // One file.added per stored file, in an unbroken chain.
    const listed = (await (await api.get(`/packages/${pkg.id}/files?limit=1000`)).json()).files as { id: string; relative_path: string }[];
    expect(listed).toHaveLength(ROUNDS * 5);
    const { events: after } = await api.events(startSequence);
    const added = after.filter((event) => event.event_type === 'file.added' && event.payload.package_id === pkg.id);
    expect(added.map((event) => event.payload.file_id).sort()).toEqual(listed.map((file) => file.id).sort());
    expect(after.map((event) => event.sequence)).toEqual(after.map((_, index) => startSequence + 1 + index));
    const verified = await (await api.get('/events/verify')).json();
    expect(verified).toMatchObject({ ok: true, first_bad_sequence: null });

    // Every stored file is served with its own bytes.
    for (const file of listed.filter((candidate) => candidate.relative_path.endsWith('copy-1.bin')).slice(0, 3)) {
      const round = file.relative_path.split('/')[0].slice(1);
      expect(await (await api.get(`/files/${file.id}/download`)).text()).toBe(`shared content ${round}`);
    }
  });

  it('reports an unknown package to clashing requests', async () => {
    const missing = '00000000-0000-4000-8000-000000000000';
    const responses = await Promise.all(Array.from({ length: 40 }, (_, index) => api.putFile(missing, index % 2 === 0 ? 'a' : `a/b${index}`, `body ${index}`)));
    expect(responses.map((response) => response.status)).toEqual(responses.map(() => 404));
  });

  it('reports a finalized package to clashing requests', async () => {
    const pkg = await api.createPackage({ name: 'batched-finalized' });
    expect((await api.post(`/packages/${pkg.id}/finalize`)).status).toBe(200);
    const responses = await Promise.all(Array.from({ length: 40 }, (_, index) => api.putFile(pkg.id, index % 2 === 0 ? 'a' : `a/b${index}`, `body ${index}`)));
    for (const response of responses) {
      expect(response.status).toBe(409);
      expect((await problemOf(response)).package_status).toBe('finalized');
    }
  });

  // A request that fails on its own must not make a concurrent one for a path below it fail as busy.
  it('stores a free path behind a failing one', async () => {
    const pkg = await api.createPackage({ name: 'batched-free-path' });
    expect((await api.putFile(pkg.id, 'a/c', 'existing')).status).toBe(201);
    for (let round = 0; round < ROUNDS; round += 1) {
      const [warm, clash, free] = await Promise.all([
        api.putFile(pkg.id, `warm${round}`, 'x'),
        api.putFile(pkg.id, 'a', `clash ${round}`),
        api.putFile(pkg.id, `a/r${round}`, `free ${round}`),
      ]);
      expect(warm.status, `round ${round}`).toBe(201);
      expect(clash.status, `round ${round}`).toBe(409);
      expect((await problemOf(clash)).conflicting_path, `round ${round}`).toBe('a/c');
      expect(free.status, `round ${round}`).toBe(201);
    }
  });

  it('rejects only the finalized package files', async () => {
    const open = await api.createPackage({ name: 'batched-open' });
    const closing = await api.createPackage({ name: 'batched-closing' });
    expect((await api.putFile(closing.id, 'kept.bin', 'kept')).status).toBe(201);
    expect((await api.post(`/packages/${closing.id}/finalize`)).status).toBe(200);
    const responses = await Promise.all([
      ...Array.from({ length: 6 }, (_, index) => api.putFile(open.id, `f${index}.bin`, `open ${index}`)),
      ...Array.from({ length: 3 }, (_, index) => api.putFile(closing.id, `late${index}.bin`, `late ${index}`)),
    ]);
    expect(responses.slice(0, 6).map((response) => response.status)).toEqual([201, 201, 201, 201, 201, 201]);
    for (const response of responses.slice(6)) {
      expect(response.status).toBe(409);
      expect((await problemOf(response)).package_status).toBe('finalized');
    }
  });
});
