import crypto from 'node:crypto';
import pg from 'pg';
import type { ApiClient } from '../../tests/support/client';
import { secondsSince, type Measurement } from './types';

const PRODUCERS = 100;
const BRANCHES = 10;
const PAGE = 50;

/**
 * Inserts `count` finalized packages in one statement: producers `producer-0` to `producer-99`, metadata
 * `{"branch": "branch-N", "commit": "<md5 of the row number>", "build": N}`, one second apart.
 */
async function seedPackages(client: pg.Client, count: number): Promise<void> {
  await client.query(
    `INSERT INTO packages (id, name, producer, subject, retention_class, metadata, status, manifest_digest, created_by, created_at, finalized_at, expires_at)
     SELECT gen_random_uuid(), 'seed-' || n, 'producer-' || (n % ${PRODUCERS}), 'app@' || n, 'standard',
            jsonb_build_object('branch', 'branch-' || (n % ${BRANCHES}), 'commit', md5(n::text), 'build', n),
            'finalized', 'blake3:' || md5(n::text) || md5(n::text), 'bench',
            now() - n * interval '1 second', now() - n * interval '1 second', now() + interval '365 days'
     FROM generate_series(1, $1::int) AS n`,
    [count],
  );
  await client.query('ANALYZE packages');
}

/** Builds the statement that `GET /packages` runs (listPackages in server/registry/packages.ts), sent over pg as the baseline. */
function listStatement(condition: string): string {
  return `SELECT packages.*,
            coalesce((SELECT max(sequence) FROM events WHERE subject_kind = 'package' AND subject_id = packages.id::text),
                     packages.last_event_sequence) AS last_event_sequence_derived
          FROM packages WHERE ${condition}
          ORDER BY created_at DESC NULLS LAST, id DESC NULLS LAST LIMIT ${PAGE + 1}`;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface ListingCase {
  label: string;
  query: (sample: number) => string;
  condition: (sample: number) => string;
}

const CASES: ListingCase[] = [
  {
    label: 'producer filter (1 % of rows)',
    query: (sample) => `producer=producer-${sample % PRODUCERS}`,
    condition: (sample) => `producer = 'producer-${sample % PRODUCERS}'`,
  },
  {
    label: 'metadata filter, one match (commit)',
    query: (sample) => `metadata_key=commit&metadata_value=${md5Of(sample + 1)}`,
    condition: (sample) => `metadata @> '{"commit": "${md5Of(sample + 1)}"}'::jsonb`,
  },
  {
    label: 'metadata filter, 10 % of rows (branch)',
    query: (sample) => `metadata_key=branch&metadata_value=branch-${sample % BRANCHES}`,
    condition: (sample) => `metadata @> '{"branch": "branch-${sample % BRANCHES}"}'::jsonb`,
  },
];

// md5 of the decimal row number, as the seed statement computes it.
function md5Of(n: number): string {
  return crypto.createHash('md5').update(String(n)).digest('hex');
}

/**
 * P5b: `GET /packages` with a producer filter and with metadata filters over `count` packages seeded by
 * SQL, first page of 50, against the same statement sent by a pg client (what psql would send).
 */
export async function measurePackageListing(api: ApiClient, databaseUrl: string, count: number, samples: number): Promise<Measurement[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const results: Measurement[] = [];
  try {
    const seeded = process.hrtime.bigint();
    await seedPackages(client, count);
    console.error(`[bench] P5b seeded ${count} packages in ${secondsSince(seeded).toFixed(1)} s`);

    for (const listing of CASES) {
      const ours: number[] = [];
      const baseline: number[] = [];
      for (let sample = 0; sample < samples; sample += 1) {
        let started = process.hrtime.bigint();
        const rows = await client.query(listStatement(listing.condition(sample)));
        baseline.push(secondsSince(started) * 1000);

        started = process.hrtime.bigint();
        const response = await api.get(`/packages?limit=${PAGE}&${listing.query(sample)}`);
        const body = (await response.json()) as { packages: unknown[] };
        ours.push(secondsSince(started) * 1000);
        if (response.status !== 200) throw new Error(`GET /packages responded ${response.status}`);
        if (body.packages.length !== Math.min(PAGE, rows.rowCount ?? 0)) {
          throw new Error(`GET /packages returned ${body.packages.length} packages, the statement ${rows.rowCount}`);
        }
      }
      results.push({
        id: 'P5b',
        what: `GET /packages over ${count.toLocaleString('en')} packages, ${listing.label}: p50 ${percentile(ours, 50).toFixed(1)} ms, p95 ${percentile(ours, 95).toFixed(1)} ms over ${samples} requests`,
        unit: 'ms',
        values: ours,
        baselineWhat: `same statement over pg, p95 ${percentile(baseline, 95).toFixed(1)} ms`,
        baselineValues: baseline,
        goal: 'p95 < 20 ms',
        goalMet: () => percentile(ours, 95) < 20,
      });
    }
  } finally {
    await client.end();
  }
  return results;
}
