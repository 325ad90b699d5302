import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BackendsConfigError, parseBackendsFile } from '@/server/storage/backends-config';
import { getSettings, resetSettingsForTests } from '@/server/settings';

const BASE = '/srv/artifact-store';

function fsBackend(id: string, root = `blobs-${id}`) {
  return { id, kind: 'fs', root };
}

function s3Backend(id: string, extra: Record<string, unknown> = {}) {
  return { id, kind: 's3', endpoint: 'http://127.0.0.1:8080', bucket: 'artifacts', force_path_style: true, ...extra };
}

function parse(raw: unknown, env: Record<string, string> = {}) {
  return parseBackendsFile(raw, 'backends.json', env, BASE);
}

/** Returns the message of the BackendsConfigError that parsing `raw` throws. */
function problemOf(raw: unknown, env: Record<string, string> = {}): string {
  try {
    parse(raw, env);
  } catch (error) {
    expect(error).toBeInstanceOf(BackendsConfigError);
    return (error as Error).message;
  }
  throw new Error('parsing succeeded, expected a BackendsConfigError');
}

describe('backends file parsing', () => {
  it('resolves fs and s3 backends', () => {
    const config = parse(
      {
        backends: [fsBackend('local', 'blobs'), s3Backend('offsite', { access_key_id_env: 'OFFSITE_KEY', secret_access_key_env: 'OFFSITE_SECRET', retrieval_tier: 'cold' })],
        primary: 'local',
        copies: 2,
      },
      { OFFSITE_KEY: 'test:tester', OFFSITE_SECRET: 'testing' },
    );
    expect(config.primary).toBe('local');
    expect(config.copies).toBe(2);
    expect(config.backends[0]).toEqual({ id: 'local', kind: 'fs', root: path.join(BASE, 'blobs'), retrievalTier: 'hot' });
    expect(config.backends[1]).toMatchObject({
      id: 'offsite',
      kind: 's3',
      region: 'us-east-1',
      bucket: 'artifacts',
      forcePathStyle: true,
      partSizeBytes: 8 * 1024 * 1024,
      credentials: { accessKeyId: 'test:tester', secretAccessKey: 'testing' },
      retrievalTier: 'cold',
    });
  });

  it('leaves credentials to the SDK chain when none are named', () => {
    const config = parse({ backends: [s3Backend('offsite')], primary: 'offsite' });
    expect(config.copies).toBe(1);
    expect(config.backends[0]).toMatchObject({ kind: 's3', credentials: undefined });
  });

  it('rejects a bad id', () => {
    const message = problemOf({ backends: [fsBackend('Local Disk')], primary: 'Local Disk' });
    expect(message).toContain('backends.0.id: lowercase letters, digits');
  });

  it('rejects a duplicate id', () => {
    const message = problemOf({ backends: [fsBackend('a'), fsBackend('a')], primary: 'a' });
    expect(message).toContain('backends.1.id: duplicate id "a"');
  });

  it('rejects two fs backends on one directory', () => {
    const message = problemOf({ backends: [fsBackend('a', 'blobs'), fsBackend('b', './blobs/')], primary: 'a', copies: 2 });
    expect(message).toContain(`backends.1.root: ${BASE}/blobs is already the root of "a"`);
  });

  it('rejects an unknown primary', () => {
    const message = problemOf({ backends: [fsBackend('a')], primary: 'b' });
    expect(message).toContain('primary: "b" is not the id of a listed backend');
  });

  it('rejects more copies than backends', () => {
    const message = problemOf({ backends: [fsBackend('a'), fsBackend('b')], primary: 'a', copies: 3 });
    expect(message).toContain('copies: 3 copies need at least 3 backends, but 2 are listed');
  });

  it('rejects an unknown kind and unknown fields', () => {
    expect(problemOf({ backends: [{ id: 'a', kind: 'gcs' }], primary: 'a' })).toContain('backends.0.kind');
    expect(problemOf({ backends: [{ ...fsBackend('a'), secret: 'x' }], primary: 'a' })).toContain('Unrecognized key');
  });

  it('rejects a small part size and half a key pair', () => {
    expect(problemOf({ backends: [s3Backend('a', { part_size_bytes: 1024 })], primary: 'a' })).toContain(
      'backends.0.part_size_bytes: must be at least 5242880',
    );
    expect(problemOf({ backends: [s3Backend('a', { access_key_id_env: 'KEY' })], primary: 'a' })).toContain(
      'backends.0.access_key_id_env: set both access_key_id_env and secret_access_key_env',
    );
  });

  it('rejects credential variables that are not set', () => {
    const message = problemOf(
      { backends: [s3Backend('a', { access_key_id_env: 'KEY', secret_access_key_env: 'SECRET' })], primary: 'a' },
      { KEY: 'id' },
    );
    expect(message).toContain('backends.0.secret_access_key_env: the environment variable SECRET is not set');
  });

  it('rejects short-form variables next to the file', () => {
    const message = problemOf({ backends: [fsBackend('a')], primary: 'a' }, { STORAGE_ROOT: '/data/blobs', REPLICA_COUNT: '2' });
    expect(message).toContain('STORAGE_ROOT: must not be set together with BACKENDS_FILE');
    expect(message).toContain('REPLICA_COUNT: must not be set together with BACKENDS_FILE');
  });

  it('allows an S3 variable the file names as a credential source', () => {
    const config = parse(
      { backends: [s3Backend('a', { access_key_id_env: 'S3_ACCESS_KEY_ID', secret_access_key_env: 'S3_SECRET_ACCESS_KEY' })], primary: 'a' },
      { S3_ACCESS_KEY_ID: 'id', S3_SECRET_ACCESS_KEY: 'secret' },
    );
    expect(config.backends[0]).toMatchObject({ credentials: { accessKeyId: 'id', secretAccessKey: 'secret' } });
  });
});

describe('storage settings', () => {
  const VARIABLES = ['BACKENDS_FILE', 'STORAGE_ROOT', 'STORAGE_BACKEND', 'S3_BUCKET', 'REPLICA_STORAGE_ROOT', 'REPLICA_COUNT'];
  const saved = Object.fromEntries(VARIABLES.map((name) => [name, process.env[name]]));
  let directory: string | undefined;

  function settingsWith(values: Record<string, string>) {
    for (const name of VARIABLES) delete process.env[name];
    Object.assign(process.env, values);
    resetSettingsForTests();
    return getSettings();
  }

  function writeBackendsFile(content: unknown): string {
    directory ??= fs.mkdtempSync(path.join(os.tmpdir(), 'backends-config-'));
    const file = path.join(directory, 'backends.json');
    fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
    return file;
  }

  afterEach(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    resetSettingsForTests();
    if (directory) fs.rmSync(directory, { recursive: true, force: true });
    directory = undefined;
  });

  it('maps the short form with a replica', () => {
    const settings = settingsWith({ STORAGE_ROOT: '/data/blobs', REPLICA_STORAGE_ROOT: '/mirror/blobs', REPLICA_COUNT: '2' });
    expect(settings.storage.primary).toBe('fs-primary');
    expect(settings.storage.copies).toBe(2);
    expect(settings.storage.backends.map((backend) => [backend.id, backend.kind])).toEqual([
      ['fs-primary', 'fs'],
      ['fs-replica', 'fs'],
    ]);
  });

  it('rejects a replica on the primary directory', () => {
    expect(() => settingsWith({ STORAGE_ROOT: '/data/blobs', REPLICA_STORAGE_ROOT: '/data/blobs/', REPLICA_COUNT: '2' })).toThrow(
      /REPLICA_STORAGE_ROOT: must differ from STORAGE_ROOT/,
    );
  });

  it('keeps one copy when REPLICA_COUNT is 1', () => {
    const settings = settingsWith({ STORAGE_ROOT: '/data/blobs', REPLICA_STORAGE_ROOT: '/mirror/blobs' });
    expect(settings.storage.copies).toBe(1);
    expect(settings.storage.backends).toHaveLength(2);
  });

  it('reads BACKENDS_FILE with fs roots relative to it', () => {
    const file = writeBackendsFile({ backends: [fsBackend('main', 'blobs')], primary: 'main' });
    const settings = settingsWith({ BACKENDS_FILE: file });
    expect(settings.storage.backends).toEqual([{ id: 'main', kind: 'fs', root: path.join(path.dirname(file), 'blobs'), retrievalTier: 'hot' }]);
  });

  it('rejects both forms at once', () => {
    const file = writeBackendsFile({ backends: [fsBackend('main')], primary: 'main' });
    expect(() => settingsWith({ BACKENDS_FILE: file, STORAGE_ROOT: '/data/blobs' })).toThrow(/STORAGE_ROOT: must not be set together with BACKENDS_FILE/);
    expect(() => settingsWith({ BACKENDS_FILE: file, STORAGE_BACKEND: 's3', S3_BUCKET: 'b' })).toThrow(/STORAGE_BACKEND: must not be set/);
  });

  it('rejects a file that is not JSON', () => {
    const file = writeBackendsFile('{ "backends": [');
    expect(() => settingsWith({ BACKENDS_FILE: file })).toThrow(/could not be read as JSON/);
  });
});
