import { connectDatabase } from '../../db/client';
import { appendEvent, headSequence } from '../../server/registry/events';
import type { ApiClient } from '../../tests/support/client';
import { median, type Measurement } from './types';

const event = (index: number) => ({ eventType: 'bench.latency', subjectKind: 'package' as const, subjectId: `bench-${index}`, actor: 'bench', payload: { index } });

/**
 * P6: time from an event's commit to its delivery to a waiting long poll and to an open SSE stream.
 * A separate database connection writes the event, so delivery goes through NOTIFY as it does between
 * processes. The clock starts before the writer's transaction begins, so each figure also contains that
 * transaction's own few queries: an upper bound on commit-to-delivery.
 */
export async function measureEventLatency(api: ApiClient, databaseUrl: string, samples: number): Promise<Measurement[]> {
  const writer = await connectDatabase({ databaseUrl, pgliteDir: '' });
  const longPoll: number[] = [];
  const sse: number[] = [];
  try {
    for (let index = 0; index < samples; index += 1) {
      const since = await headSequence(writer.db);
      const poll = api.events(since, 10);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const started = process.hrtime.bigint();
      await writer.db.transaction((tx) => appendEvent(tx, event(index)));
      const result = await poll;
      longPoll.push(Number(process.hrtime.bigint() - started) / 1e6);
      if (result.events.length === 0) throw new Error('long poll returned no event');
    }

    const controller = new AbortController();
    const since = await headSequence(writer.db);
    const response = await api.get(`/events/stream?since=${since}`, { signal: controller.signal });
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let buffered = '';
    for (let index = 0; index < samples; index += 1) {
      const started = process.hrtime.bigint();
      const sequence = await writer.db.transaction((tx) => appendEvent(tx, event(index)));
      while (!buffered.includes(`id: ${sequence}\n`)) {
        const { value, done } = await reader.read();
        if (done) throw new Error('SSE stream ended');
        buffered += decoder.decode(value, { stream: true });
      }
      sse.push(Number(process.hrtime.bigint() - started) / 1e6);
      buffered = buffered.slice(buffered.indexOf(`id: ${sequence}\n`));
    }
    controller.abort();
  } finally {
    await writer.close();
  }
  const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))];
  const describe = (id: string, what: string, values: number[]): Measurement => ({
    id,
    what: `${what}: p50 ${median(values).toFixed(1)} ms, p99 ${percentile(values, 99).toFixed(1)} ms over ${values.length} events`,
    unit: 'ms',
    values,
    goal: 'p50 < 10 ms, p99 < 50 ms',
    goalMet: () => median(values) < 10 && percentile(values, 99) < 50,
  });
  return [describe('P6 poll', 'event commit → waiting long poll', longPoll), describe('P6 SSE', 'event commit → SSE stream', sse)];
}
