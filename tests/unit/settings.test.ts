import { afterEach, describe, expect, it } from 'vitest';
import { getSettings, resetSettingsForTests } from '@/server/settings';

const S3_VARIABLES = [
  'STORAGE_BACKEND',
  'S3_ENDPOINT',
  'S3_REGION',
  'S3_BUCKET',
  'S3_ACCESS_KEY_ID',
  'S3_SECRET_ACCESS_KEY',
  'S3_FORCE_PATH_STYLE',
  'S3_PART_SIZE_BYTES',
];
const saved = Object.fromEntries(S3_VARIABLES.map((name) => [name, process.env[name]]));

function settingsWith(values: Record<string, string>) {
  for (const name of S3_VARIABLES) delete process.env[name];
  Object.assign(process.env, values);
  resetSettingsForTests();
  return getSettings();
}

afterEach(() => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  resetSettingsForTests();
});

describe('storage backend settings', () => {
  it('defaults to the filesystem backend', () => {
    const settings = settingsWith({});
    expect(settings.STORAGE_BACKEND).toBe('fs');
    expect(settings.S3_PART_SIZE_BYTES).toBe(8 * 1024 * 1024);
  });

  it('parses a complete S3 configuration', () => {
    const settings = settingsWith({
      STORAGE_BACKEND: 's3',
      S3_ENDPOINT: 'http://127.0.0.1:8080',
      S3_BUCKET: 'artifacts',
      S3_ACCESS_KEY_ID: 'test:tester',
      S3_SECRET_ACCESS_KEY: 'testing',
      S3_FORCE_PATH_STYLE: 'true',
      S3_PART_SIZE_BYTES: String(16 * 1024 * 1024),
    });
    expect(settings.STORAGE_BACKEND).toBe('s3');
    expect(settings.S3_REGION).toBe('us-east-1');
    expect(settings.S3_FORCE_PATH_STYLE).toBe(true);
    expect(settings.S3_PART_SIZE_BYTES).toBe(16 * 1024 * 1024);
  });

  it('rejects S3 without a bucket', () => {
    expect(() => settingsWith({ STORAGE_BACKEND: 's3' })).toThrow(/S3_BUCKET: missing/);
  });

  it('rejects half a key pair', () => {
    expect(() => settingsWith({ STORAGE_BACKEND: 's3', S3_BUCKET: 'b', S3_ACCESS_KEY_ID: 'id' })).toThrow(/set both, or neither/);
  });

  it('rejects a part size below 5 MiB', () => {
    expect(() => settingsWith({ STORAGE_BACKEND: 's3', S3_BUCKET: 'b', S3_PART_SIZE_BYTES: '1048576' })).toThrow(
      /S3_PART_SIZE_BYTES: must be at least 5242880/,
    );
  });

  it('rejects an unknown backend and a bad endpoint', () => {
    expect(() => settingsWith({ STORAGE_BACKEND: 'gcs' })).toThrow(/STORAGE_BACKEND/);
    expect(() => settingsWith({ STORAGE_BACKEND: 's3', S3_BUCKET: 'b', S3_ENDPOINT: 'not a url' })).toThrow(/S3_ENDPOINT/);
  });
});
