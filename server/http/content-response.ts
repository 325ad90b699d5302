import { countDownloadBytes } from '../metrics/http';
import type { ContentHandle } from '../registry/content';
import { buildByteResponse } from './byte-response';
import { contentDisposition } from './content-disposition';

/**
 * Serves stored content for GET or HEAD with ranges and conditionals. The strong ETag is the quoted
 * content address, which changes exactly when the bytes do. The content bytes (not the multipart
 * boundaries of a multi-range response) count toward download_bytes_sent_total as they pass toward the client.
 */
export async function contentResponse(request: Request, content: ContentHandle, extraHeaders: Record<string, string> = {}): Promise<Response> {
  const response = await buildByteResponse({
    method: request.method === 'HEAD' ? 'HEAD' : 'GET',
    request,
    size: content.sizeBytes,
    etag: `"${content.contentAddress}"`,
    contentType: content.mediaType,
    contentDisposition: contentDisposition(content.fileName),
    lastModified: content.lastModified,
    openRange: async (range) => countDownloadBytes(await content.open(range)),
  });
  for (const [name, value] of Object.entries(extraHeaders)) response.headers.set(name, value);
  return response;
}
