import { Transform, type TransformCallback } from 'node:stream';
import { getMetrics, type UploadProtocol } from './registry';

/** Creates a pass-through stream that adds every chunk to upload_bytes_received_total as it arrives. */
export function countUploadBytes(protocol: UploadProtocol): Transform {
  const counter = getMetrics().uploadBytesReceived.labels({ protocol });
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      counter.inc(chunk.byteLength);
      callback(null, chunk);
    },
  });
}

// On globalThis, like the metrics, because each Next.js bundle that imports this module has its own copy of it.
const globalForUploads = globalThis as typeof globalThis & { artifactStoreUploadsInProgress?: { count: number } };
const inProgress = (globalForUploads.artifactStoreUploadsInProgress ??= { count: 0 });

/** Returns the number of uploads that this process is receiving bytes for now, over every protocol. */
export function uploadsInProgress(): number {
  return inProgress.count;
}

/** Adds one upload to uploads_in_progress; the returned function removes it and ignores calls after the first. */
export function trackUploadInProgress(protocol: UploadProtocol): () => void {
  const gauge = getMetrics().uploadsInProgress.labels({ protocol });
  gauge.inc();
  inProgress.count += 1;
  let finished = false;
  return () => {
    if (finished) return;
    finished = true;
    gauge.dec();
    inProgress.count -= 1;
  };
}
