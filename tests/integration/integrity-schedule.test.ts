import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

let environment: TestEnvironment;
let server: TestServer;
let api: ApiClient;

beforeAll(async () => {
  environment = await createTestEnvironment({ SCRUB_INTERVAL_SECONDS: '1', SWEEP_INTERVAL_SECONDS: '0', REPLICA_COUNT: '2' });
  environment.env.REPLICA_STORAGE_ROOT = path.join(environment.dir, 'replica');
  server = await startServer(environment);
  api = new ApiClient(server.url, environment.adminToken);
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
});

describe('scheduled scrub', () => {
  it('repairs a flipped byte without a request', async () => {
    const original = crypto.randomBytes(40_000);
    const pkg = await api.createPackage({ name: 'scheduled' });
    const put = await api.putFile(pkg.id, 'data.bin', new Uint8Array(original));
    expect(put.status).toBe(201);
    const address: string = (await put.json()).content_address;
    const hex = address.slice('blake3:'.length);
    const file = path.join(environment.storageRoot, 'blake3', hex.slice(0, 2), hex.slice(2, 4), hex);
    const bytes = fs.readFileSync(file);
    bytes[100] ^= 0x01;
    fs.writeFileSync(file, bytes);

    let repaired: any[] = [];
    for (let attempt = 0; attempt < 100 && repaired.length === 0; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const { events } = await api.events(0, 0, '&event_type=storage.location_repaired');
      repaired = events.filter((event) => event.subject_id === address);
    }
    expect(repaired).toHaveLength(1);
    expect(repaired[0].actor).toBe('system:scrub-schedule');
    expect(fs.readFileSync(file).equals(original)).toBe(true);
  });
});
