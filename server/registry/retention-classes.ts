import fs from 'node:fs';
import { sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Executor } from '@/db/client';
import { retentionClasses } from '@/db/schema';

export const RetentionClass = z
  .object({
    class_id: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, "_" or "-", starting with a letter'),
    default_duration_seconds: z.number().int().positive().nullable(),
    deletion_strategy: z.enum(['delete']),
  })
  .strict();
export type RetentionClass = z.infer<typeof RetentionClass>;

/** GET /retention-classes: every configured class, in one page. */
export const RetentionClassList = z.object({ retention_classes: z.array(RetentionClass), next_cursor: z.null() });
export type RetentionClassList = z.infer<typeof RetentionClassList>;

const RetentionClassFile = z
  .object({ retention_classes: z.array(RetentionClass).min(1) })
  .strict()
  .refine(
    (file) => new Set(file.retention_classes.map((item) => item.class_id)).size === file.retention_classes.length,
    'class_id values must be unique',
  );

const DAY_SECONDS = 24 * 3600;

export const DEFAULT_RETENTION_CLASSES: RetentionClass[] = [
  { class_id: 'ephemeral', default_duration_seconds: 7 * DAY_SECONDS, deletion_strategy: 'delete' },
  { class_id: 'standard', default_duration_seconds: 365 * DAY_SECONDS, deletion_strategy: 'delete' },
  { class_id: 'permanent', default_duration_seconds: null, deletion_strategy: 'delete' },
];

/**
 * Reads the retention classes from a JSON file `{"retention_classes": [...]}`, or returns the defaults when
 * no file is named. Throws with every problem listed, so a bad file stops the server at start.
 */
export function loadRetentionClasses(file: string | undefined): RetentionClass[] {
  if (!file) return DEFAULT_RETENTION_CLASSES;
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`RETENTION_CLASSES_FILE ${file} could not be read as JSON: ${(error as Error).message}`);
  }
  const parsed = RetentionClassFile.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.') || '(file)'}: ${issue.message}`);
    throw new Error(`RETENTION_CLASSES_FILE ${file} is invalid:\n${lines.join('\n')}`);
  }
  return parsed.data.retention_classes;
}

/** Writes the configured classes into the database; classes removed from the configuration stay, so old packages keep their class. */
export async function syncRetentionClasses(db: Executor, classes: RetentionClass[]): Promise<void> {
  for (const item of classes) {
    await db
      .insert(retentionClasses)
      .values({
        classId: item.class_id,
        defaultDurationSeconds: item.default_duration_seconds,
        deletionStrategy: item.deletion_strategy,
      })
      .onConflictDoUpdate({
        target: retentionClasses.classId,
        set: {
          defaultDurationSeconds: item.default_duration_seconds,
          deletionStrategy: item.deletion_strategy,
          updatedAt: sql`now()`,
        },
      });
  }
}
