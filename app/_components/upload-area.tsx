'use client';

import { useQueryClient } from '@tanstack/react-query';
import { useCallback, useEffect, useRef, useState, type DragEvent } from 'react';
import { Upload } from 'tus-js-client';
import { formatBytes } from './api';

const TUS_ENDPOINT = '/api/v1/uploads';
const PARALLEL_UPLOADS = 3;
/** Each PATCH carries at most this many bytes, so a paused or broken upload loses at most one chunk. */
const CHUNK_BYTES = 32 * 1024 * 1024;

type UploadStatus = 'queued' | 'uploading' | 'paused' | 'done' | 'error';

interface UploadItem {
  key: string;
  file: File;
  relativePath: string;
  status: UploadStatus;
  bytesSent: number;
  /** Bytes per second, smoothed over the last progress updates. */
  speed: number;
  resumedFrom: number;
  error?: string;
}

interface SelectedFile {
  file: File;
  relativePath: string;
}

/** Handle on a running transfer, tus or single request, that can be stopped. */
interface Transfer {
  abort(): void;
}

/** Reads every file below a dropped directory entry, keeping its path relative to the drop. */
async function readEntry(entry: FileSystemEntry, prefix: string, out: SelectedFile[]): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
    out.push({ file, relativePath: prefix + entry.name });
    return;
  }
  if (!entry.isDirectory) return;
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  // readEntries returns the directory in batches and then an empty batch, so it is called until that.
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) break;
    for (const child of batch) await readEntry(child, `${prefix}${entry.name}/`, out);
  }
}

async function filesFromDrop(dataTransfer: DataTransfer): Promise<SelectedFile[]> {
  const entries = [...dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter((entry): entry is FileSystemEntry => !!entry);
  if (entries.length === 0) return [...dataTransfer.files].map((file) => ({ file, relativePath: file.name }));
  const out: SelectedFile[] = [];
  for (const entry of entries) await readEntry(entry, '', out);
  return out;
}

/** Checks whether the server offers tus at TUS_ENDPOINT; a tus server's OPTIONS response carries Tus-Version. */
async function detectTus(): Promise<boolean> {
  try {
    const response = await fetch(TUS_ENDPOINT, { method: 'OPTIONS' });
    return response.headers.has('tus-version') || response.headers.has('tus-resumable');
  } catch {
    return false;
  }
}

/** Uploads one file as multipart/form-data; used only when the server has no tus endpoint. */
function startSingleRequest(
  packageId: string,
  item: UploadItem,
  onProgress: (sent: number) => void,
  onDone: (error?: string) => void,
): Transfer {
  const xhr = new XMLHttpRequest();
  const body = new FormData();
  body.append('relative_path', item.relativePath);
  body.append('media_type', item.file.type || 'application/octet-stream');
  body.append('file', item.file, item.file.name);
  xhr.upload.onprogress = (event) => onProgress(event.loaded);
  xhr.onload = () => {
    if (xhr.status >= 200 && xhr.status < 300) return onDone();
    let detail = `HTTP ${xhr.status}`;
    try {
      const problem = JSON.parse(xhr.responseText) as { detail?: string };
      if (problem.detail) detail = problem.detail;
    } catch {
      // The body was not problem+json; the status line is all there is.
    }
    onDone(detail);
  };
  xhr.onerror = () => onDone('The connection failed.');
  xhr.open('POST', `/api/v1/packages/${packageId}/files`);
  xhr.send(body);
  return { abort: () => xhr.abort() };
}

function tusErrorMessage(error: Error): string {
  const response = (error as { originalResponse?: { getBody(): string; getStatus(): number } | null }).originalResponse;
  if (response) {
    try {
      const problem = JSON.parse(response.getBody()) as { detail?: string };
      if (problem.detail) return `HTTP ${response.getStatus()}: ${problem.detail}`;
    } catch {
      // Not problem+json.
    }
    return `HTTP ${response.getStatus()}: ${response.getBody().slice(0, 200)}`;
  }
  return error.message;
}

export function UploadArea({ packageId, disabledReason }: { packageId: string; disabledReason: string }) {
  const queryClient = useQueryClient();
  const [items, setItems] = useState<UploadItem[]>([]);
  const [tusAvailable, setTusAvailable] = useState<boolean | null>(null);
  const [dragging, setDragging] = useState(false);
  const transfers = useRef(new Map<string, Transfer>());
  const lastSample = useRef(new Map<string, { at: number; bytes: number }>());
  const disabled = disabledReason !== '';

  useEffect(() => {
    void detectTus().then(setTusAvailable);
  }, []);

  const update = useCallback((key: string, change: Partial<UploadItem>) => {
    setItems((current) => current.map((item) => (item.key === key ? { ...item, ...change } : item)));
  }, []);

  const onProgress = useCallback(
    (key: string, sent: number) => {
      const now = performance.now();
      const sample = lastSample.current.get(key);
      let speed: number | undefined;
      if (sample && now - sample.at >= 250) {
        speed = ((sent - sample.bytes) * 1000) / (now - sample.at);
        lastSample.current.set(key, { at: now, bytes: sent });
      } else if (!sample) {
        lastSample.current.set(key, { at: now, bytes: sent });
      }
      setItems((current) =>
        current.map((item) =>
          item.key === key ? { ...item, bytesSent: sent, speed: speed === undefined ? item.speed : item.speed * 0.5 + speed * 0.5 } : item,
        ),
      );
    },
    [],
  );

  const finish = useCallback(
    (key: string, error?: string) => {
      transfers.current.delete(key);
      lastSample.current.delete(key);
      update(key, error ? { status: 'error', error, speed: 0 } : { status: 'done', speed: 0 });
      void queryClient.invalidateQueries({ queryKey: ['package', packageId] });
    },
    [packageId, queryClient, update],
  );

  const start = useCallback(
    async (item: UploadItem) => {
      update(item.key, { status: 'uploading', error: undefined });
      if (!tusAvailable) {
        transfers.current.set(
          item.key,
          startSingleRequest(packageId, item, (sent) => onProgress(item.key, sent), (error) => finish(item.key, error)),
        );
        return;
      }
      const upload = new Upload(item.file, {
        endpoint: TUS_ENDPOINT,
        chunkSize: CHUNK_BYTES,
        retryDelays: [0, 1000, 3000, 5000],
        metadata: {
          package_id: packageId,
          relative_path: item.relativePath,
          media_type: item.file.type || 'application/octet-stream',
          filename: item.file.name,
        },
        // tus-js-client's default fingerprint (name, type, size, mtime, endpoint) ignores the folder, so two
        // files of one name in different folders would share an upload.
        fingerprint: async (file) => ['artifact-store', packageId, item.relativePath, file.size, file.lastModified].join('|'),
        removeFingerprintOnSuccess: true,
        onProgress: (sent) => onProgress(item.key, sent),
        onSuccess: () => finish(item.key),
        onError: (error) => finish(item.key, tusErrorMessage(error)),
      });
      transfers.current.set(item.key, { abort: () => void upload.abort() });
      const previous = await upload.findPreviousUploads();
      if (previous.length > 0) {
        upload.resumeFromPreviousUpload(previous[0]);
        update(item.key, { resumedFrom: previous[0].size ?? 0 });
      }
      upload.start();
    },
    [finish, onProgress, packageId, tusAvailable, update],
  );

  // Starts queued files while fewer than PARALLEL_UPLOADS are running.
  useEffect(() => {
    if (tusAvailable === null) return;
    const running = items.filter((item) => item.status === 'uploading').length;
    const queued = items.filter((item) => item.status === 'queued').slice(0, Math.max(0, PARALLEL_UPLOADS - running));
    for (const item of queued) void start(item);
  }, [items, start, tusAvailable]);

  useEffect(() => {
    const running = transfers.current;
    return () => running.forEach((transfer) => transfer.abort());
  }, []);

  const add = (selected: SelectedFile[]) => {
    const stamp = Date.now();
    setItems((current) => [
      ...current,
      ...selected.map((entry, index) => ({
        key: `${stamp}-${index}-${entry.relativePath}`,
        file: entry.file,
        relativePath: entry.relativePath.normalize('NFC'),
        status: 'queued' as const,
        bytesSent: 0,
        speed: 0,
        resumedFrom: 0,
      })),
    ]);
  };

  const onDrop = async (event: DragEvent) => {
    event.preventDefault();
    setDragging(false);
    if (disabled) return;
    add(await filesFromDrop(event.dataTransfer));
  };
  const pause = (item: UploadItem) => {
    transfers.current.get(item.key)?.abort();
    transfers.current.delete(item.key);
    update(item.key, { status: 'paused', speed: 0 });
  };

  return (
    <section className="panel" aria-labelledby="upload-heading">
      <h2 id="upload-heading">Upload files</h2>
      <p className="hint" data-testid="upload-mode">
        {tusAvailable === null
          ? 'Checking the upload endpoint…'
          : tusAvailable
            ? 'Resumable uploads (tus). Drop the same file again after a reload to resume it.'
            : 'The server has no tus endpoint at /api/v1/uploads: files go up in one request each and cannot resume.'}
      </p>
      <div
        className={`drop-zone${dragging ? ' dragging' : ''}${disabled ? ' disabled' : ''}`}
        data-testid="drop-zone"
        onDragOver={(event) => {
          event.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
        title={disabledReason || undefined}
      >
        <p>{disabled ? disabledReason : 'Drop files or folders here, or choose them:'}</p>
        <label>
          Files{' '}
          <input
            type="file"
            multiple
            disabled={disabled}
            data-testid="file-input"
            onChange={(event) => {
              add([...(event.target.files ?? [])].map((file) => ({ file, relativePath: file.name })));
              event.target.value = '';
            }}
          />
        </label>{' '}
        <label>
          Folder{' '}
          <input
            type="file"
            multiple
            disabled={disabled}
            data-testid="folder-input"
            {...{ webkitdirectory: '' }}
            onChange={(event) => {
              add([...(event.target.files ?? [])].map((file) => ({ file, relativePath: file.webkitRelativePath || file.name })));
              event.target.value = '';
            }}
          />
        </label>
      </div>
      {items.length > 0 && (
        <table className="grid uploads" data-testid="upload-table">
          <thead>
            <tr>
              <th>Path</th>
              <th>Progress</th>
              <th>Speed</th>
              <th>Time left</th>
              <th>Status</th>
              <th>Actions</th>
            </tr>
          </thead>
          <tbody>
            {items.map((item) => {
              let fraction = item.bytesSent / item.file.size;
              if (item.file.size === 0) fraction = item.status === 'done' ? 1 : 0;
              const secondsLeft = item.speed > 0 ? Math.ceil((item.file.size - item.bytesSent) / item.speed) : null;
              return (
                <tr key={item.key} data-testid="upload-row" data-path={item.relativePath} data-status={item.status}>
                  <td className="mono">{item.relativePath}</td>
                  <td>
                    <progress max={1} value={fraction} aria-label={`Progress of ${item.relativePath}`} />{' '}
                    <span data-testid="upload-bytes">
                      {formatBytes(item.bytesSent)} / {formatBytes(item.file.size)}
                    </span>
                  </td>
                  <td>{item.status === 'uploading' && item.speed > 0 ? `${formatBytes(item.speed)}/s` : ''}</td>
                  <td>{item.status === 'uploading' && secondsLeft !== null ? `${secondsLeft} s` : ''}</td>
                  <td data-testid="upload-status">
                    {item.status}
                    {item.resumedFrom > 0 && item.status !== 'done' ? ` (resumed)` : ''}
                    {item.error && <span className="error"> {item.error}</span>}
                  </td>
                  <td>
                    {item.status === 'uploading' && (
                      <button type="button" onClick={() => pause(item)} data-testid="upload-pause">
                        Pause
                      </button>
                    )}
                    {item.status === 'paused' && (
                      <button type="button" onClick={() => update(item.key, { status: 'queued' })} data-testid="upload-resume">
                        Resume
                      </button>
                    )}
                    {item.status === 'error' && (
                      <button type="button" onClick={() => update(item.key, { status: 'queued', bytesSent: 0 })} data-testid="upload-retry">
                        Retry
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
