import type { Writable } from 'node:stream';
import type { BlobWriter } from './backend';

export type WriterState = 'open' | 'committing' | 'committed' | 'discarded';

/**
 * The state rules of BlobWriter that every backend's writer shares: commit runs once, cancel waits for a
 * running commit and keeps a successful one, and the bytes are discarded at most once. Subclasses set
 * `state` to 'committed' when their commit succeeded and to 'discarded' when they start discarding.
 */
export abstract class BlobWriterLifecycle implements BlobWriter {
  abstract readonly stream: Writable;
  protected state: WriterState = 'open';
  #commitDone: Promise<unknown> | undefined;
  #discardDone: Promise<void> | undefined;

  async commit(objectKey: string): Promise<{ created: boolean }> {
    if (this.state !== 'open') throw new Error(`BlobWriter.commit was called on a writer that is already ${this.state}.`);
    this.state = 'committing';
    const done = this.commitBytes(objectKey);
    this.#commitDone = done.catch(() => undefined);
    return done;
  }

  async cancel(): Promise<void> {
    // A cancel during commit waits for the commit; a commit that succeeded is kept.
    if (this.#commitDone) await this.#commitDone;
    if (this.state === 'committed') return;
    await this.discard();
  }

  /** Runs discardBytes on the first call and returns the same promise on later ones. */
  protected discard(): Promise<void> {
    this.#discardDone ??= this.discardBytes();
    return this.#discardDone;
  }

  /** Makes the written bytes the object at objectKey; on failure it discards them and rethrows. */
  protected abstract commitBytes(objectKey: string): Promise<{ created: boolean }>;

  /** Throws the written bytes away. */
  protected abstract discardBytes(): Promise<void>;
}
