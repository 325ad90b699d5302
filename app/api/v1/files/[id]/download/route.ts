import { downloadFile } from '@/server/routes/file-download';

export const dynamic = 'force-dynamic';

export const GET = downloadFile;
export const HEAD = downloadFile;
