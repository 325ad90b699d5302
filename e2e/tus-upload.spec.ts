import { Blake3Hasher } from '@napi-rs/blake-hash';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Locator, Page } from '@playwright/test';
import { expect, test } from './support/fixtures';

const SIZE_BYTES = 200 * 1024 * 1024;

function blake3Hex(bytes: Buffer): string {
  const hasher = new Blake3Hasher();
  hasher.update(bytes);
  return hasher.digest('hex');
}

function sha256Hex(bytes: Buffer): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

/** Writes a folder of nested files and returns each path (relative to the folder's parent) with its bytes. */
function writeNestedFolder(): { folder: string; files: Map<string, Buffer> } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'artifact-store-e2e-'));
  const folder = path.join(root, 'build-output');
  const contents: [string, Buffer][] = [
    ['readme.txt', Buffer.from('top-level file\n')],
    ['bin/tool.bin', crypto.randomBytes(300 * 1024)],
    ['docs/guide/intro.md', Buffer.from('# Intro\n')],
    ['docs/guide/deep/nested/data.json', Buffer.from('{"value": 42}\n')],
    ['empty.dat', Buffer.alloc(0)],
  ];
  const files = new Map<string, Buffer>();
  for (const [relative, bytes] of contents) {
    const full = path.join(folder, relative);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    fs.writeFileSync(full, bytes);
    files.set(`build-output/${relative}`, bytes);
  }
  return { folder, files };
}

async function progressOf(row: Locator): Promise<number> {
  return row.locator('progress').evaluate((element) => (element as HTMLProgressElement).value);
}

/** Slows uploads to 20 MiB/s so that pause and reload land in the middle of the transfer. */
async function throttleUploads(page: Page): Promise<void> {
  const session = await page.context().newCDPSession(page);
  await session.send('Network.enable');
  await session.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: 20 * 1024 * 1024,
  });
}

test('large upload pause, resume, reload', async ({ console: ui, page, tokens, adminApi }) => {
  test.setTimeout(180_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'artifact-store-e2e-tus-'));
  const file = path.join(dir, 'large.bin');
  const hash = crypto.createHash('sha256');
  const handle = fs.openSync(file, 'w');
  for (let written = 0; written < SIZE_BYTES; written += 8 * 1024 * 1024) {
    const chunk = crypto.randomBytes(8 * 1024 * 1024);
    hash.update(chunk);
    fs.writeSync(handle, chunk);
  }
  fs.closeSync(handle);
  const sha256 = hash.digest('hex');

  const { id } = await adminApi.createPackage('e2e-tus');
  await ui.signIn(tokens.admin);
  await page.goto(`/packages/${id}`);
  await expect(page.getByTestId('upload-mode')).toContainText('Resumable uploads');
  await throttleUploads(page);

  await page.getByTestId('file-input').setInputFiles(file);
  const row = page.locator('[data-testid="upload-row"][data-path="large.bin"]');
  await expect(row).toHaveAttribute('data-status', 'uploading');
  await expect.poll(() => progressOf(row), { timeout: 30_000 }).toBeGreaterThan(0.1);

  await row.getByTestId('upload-pause').click();
  await expect(row).toHaveAttribute('data-status', 'paused');
  const pausedAt = await progressOf(row);
  expect(pausedAt).toBeLessThan(1);
  await ui.screenshot('upload-paused');

  await row.getByTestId('upload-resume').click();
  await expect(row).toHaveAttribute('data-status', 'uploading');
  await expect(row.getByTestId('upload-status')).toContainText('resumed');
  await expect.poll(() => progressOf(row), { timeout: 30_000 }).toBeGreaterThan(Math.min(0.5, pausedAt + 0.2));

  await page.reload();
  await expect(page.getByTestId('upload-mode')).toContainText('Resumable uploads');
  await throttleUploads(page);
  await page.getByTestId('file-input').setInputFiles(file);
  const again = page.locator('[data-testid="upload-row"][data-path="large.bin"]');
  await expect(again.getByTestId('upload-status')).toContainText('resumed');
  await expect(again).toHaveAttribute('data-status', 'done', { timeout: 120_000 });

  const fileRow = page.locator('[data-testid="file-row"][data-path="large.bin"]');
  await expect(fileRow.getByTestId('file-sha256')).toHaveText(sha256);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('folder upload, finalize and manifest', async ({ console: ui, page, tokens }) => {
  const { folder, files } = writeNestedFolder();
  await ui.signIn(tokens.admin);
  const packageId = await ui.createPackage({ name: 'e2e-folder', producer: 'e2e', subject: 'folder-upload', metadata: '{"build": 7}' });
  await expect(page.getByTestId('package-status')).toHaveText('open');
  await expect(page.getByTestId('package-metadata-view')).toContainText('"build": 7');

  await expect(page.getByTestId('upload-mode')).not.toContainText('Checking');
  await page.getByTestId('folder-input').setInputFiles(folder);
  await expect(page.getByTestId('upload-row')).toHaveCount(files.size);
  await expect(page.locator('[data-testid="upload-row"][data-status="done"]')).toHaveCount(files.size, { timeout: 30_000 });

  await expect(page.getByTestId('file-row')).toHaveCount(files.size);
  for (const [relativePath, bytes] of files) {
    const row = page.locator(`[data-testid="file-row"][data-path="${relativePath}"]`);
    await expect(row, relativePath).toHaveCount(1);
    await expect(row.getByTestId('file-blake3'), `BLAKE3 of ${relativePath}`).toHaveText(blake3Hex(bytes));
    await expect(row.getByTestId('file-sha256'), `SHA-256 of ${relativePath}`).toHaveText(sha256Hex(bytes));
  }
  await ui.screenshot('package-open');

  await page.getByTestId('finalize').click();
  await expect(page.getByTestId('finalize-dialog')).toContainText('irreversible');
  await page.getByTestId('finalize-confirm').click();
  await expect(page.getByTestId('package-status')).toHaveText('finalized');
  await expect(page.getByTestId('manifest-digest')).toHaveText(/^blake3:[0-9a-f]{64}$/);

  const manifestText = await page.getByTestId('manifest-json').textContent();
  const manifest = JSON.parse(manifestText ?? '') as { files: { relative_path: string; blake3_hex: string; sha256_hex: string }[] };
  expect(manifest.files.map((file) => file.relative_path).sort()).toEqual([...files.keys()].sort());
  for (const entry of manifest.files) {
    expect(entry.sha256_hex, entry.relative_path).toBe(sha256Hex(files.get(entry.relative_path)!));
    expect(entry.blake3_hex, entry.relative_path).toBe(blake3Hex(files.get(entry.relative_path)!));
  }
  await expect(page.getByTestId('finalize')).toHaveCount(0);
  await expect(page.getByTestId('drop-zone')).toHaveCount(0);
  await ui.screenshot('package-finalized');

  await page.goto(`/packages?name=e2e-folder`);
  await expect(page.locator(`[data-testid="package-row"][data-package-id="${packageId}"]`)).toBeVisible();
  await ui.screenshot('packages');
  fs.rmSync(path.dirname(folder), { recursive: true, force: true });
});
