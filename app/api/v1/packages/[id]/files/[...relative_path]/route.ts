import { putFile } from '@/server/routes/file-put';

export const dynamic = 'force-dynamic';

export const PUT = putFile;
