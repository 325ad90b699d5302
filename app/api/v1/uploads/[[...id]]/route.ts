import { handleUploadRequest } from '@/server/uploads/handle-request';

export const dynamic = 'force-dynamic';

// tus 1.0.0 resumable uploads: POST creates, HEAD reports the offset, PATCH appends, DELETE terminates.
export const POST = handleUploadRequest;
export const HEAD = handleUploadRequest;
export const PATCH = handleUploadRequest;
export const DELETE = handleUploadRequest;
export const OPTIONS = handleUploadRequest;
