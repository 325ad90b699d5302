'use client';

import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { ApiError, apiJson, describeExpiry, errorMessage, formatTime, type EventRecord, type RetentionState } from './api';
import { useRetentionClasses } from './queries';
import { useScopeGate } from './session';

interface RetentionHistory {
  events: EventRecord[];
}

/** Explains a 404 from the retention endpoints, which an older server does not have. */
function retentionError(error: unknown): string {
  if (error instanceof ApiError && error.status === 404 && !error.problem) {
    return 'This server has no retention endpoints (/api/v1/packages/{id}/retention returned 404).';
  }
  return errorMessage(error);
}

export function RetentionPanel({ packageId }: { packageId: string }) {
  const queryClient = useQueryClient();
  const gate = useScopeGate('retention');
  const base = `/api/v1/packages/${packageId}/retention`;
  const state = useQuery({ queryKey: ['retention', packageId], queryFn: () => apiJson<RetentionState>(base) });
  const classes = useRetentionClasses();
  const history = useQuery({
    queryKey: ['retention', packageId, 'history'],
    queryFn: () => apiJson<RetentionHistory>(`${base}/history`),
    enabled: state.isSuccess,
  });
  const [expiry, setExpiry] = useState('');
  const [extendReason, setExtendReason] = useState('');
  const [holdReason, setHoldReason] = useState('');
  const [releaseReason, setReleaseReason] = useState('');

  const refresh = () => queryClient.invalidateQueries({ queryKey: ['retention', packageId] });
  const extend = useMutation({
    mutationFn: () =>
      apiJson(`${base}/extensions`, { method: 'POST', json: { new_expires_at: new Date(expiry).toISOString(), reason: extendReason } }),
    onSuccess: () => {
      setExtendReason('');
      void refresh();
      void queryClient.invalidateQueries({ queryKey: ['package', packageId] });
    },
  });
  const hold = useMutation({
    mutationFn: () => apiJson(`${base}/holds`, { method: 'POST', json: { reason: holdReason } }),
    onSuccess: () => {
      setHoldReason('');
      void refresh();
    },
  });
  const release = useMutation({
    mutationFn: (holdId: string) => apiJson(`${base}/holds/${holdId}/release`, { method: 'POST', json: { reason: releaseReason } }),
    onSuccess: () => {
      setReleaseReason('');
      void refresh();
    },
  });

  const submitExtend = (event: FormEvent) => {
    event.preventDefault();
    extend.mutate();
  };
  const submitHold = (event: FormEvent) => {
    event.preventDefault();
    hold.mutate();
  };
  const gated = {
    disabled: !gate.allowed,
    title: gate.reason || undefined,
    'aria-describedby': gate.allowed ? undefined : 'retention-scope-reason',
  };

  return (
    <section className="panel" aria-labelledby="retention-heading" data-testid="retention-panel">
      <h2 id="retention-heading">Retention</h2>
      {!gate.allowed && (
        <p id="retention-scope-reason" className="hint">
          {gate.reason}
        </p>
      )}
      {state.isPending && <p className="status">Loading retention…</p>}
      {state.isError && (
        <p className="error" role="alert" data-testid="retention-error">
          {retentionError(state.error)}
        </p>
      )}
      {state.isSuccess && (
        <>
          <dl className="fields" data-testid="retention-state">
            <dt>Expires</dt>
            <dd data-testid="retention-expires">
              {describeExpiry(
                { status: state.data.status, expires_at: state.data.current_expires_at, retention_class: state.data.effective_class },
                classes.data?.retention_classes,
              )}
            </dd>
            <dt>Class</dt>
            <dd>{state.data.effective_class}</dd>
            <dt>Eligible for deletion</dt>
            <dd data-testid="retention-eligible">
              {state.data.eligible_for_deletion ? 'yes' : 'no'}: {state.data.reasons.join('; ')}
            </dd>
            <dt>Active holds</dt>
            <dd>
              {state.data.active_holds.length === 0 ? (
                'none'
              ) : (
                <ul className="plain" data-testid="active-holds">
                  {state.data.active_holds.map((item) => (
                    <li key={item.hold_id} data-testid="active-hold">
                      <span className="mono">{item.hold_id.slice(0, 8)}</span> {item.reason} ({item.actor}, {formatTime(item.applied_at)}){' '}
                      <button
                        type="button"
                        {...gated}
                        disabled={gated.disabled || release.isPending || releaseReason.trim() === ''}
                        onClick={() => release.mutate(item.hold_id)}
                        data-testid="release-hold"
                      >
                        Release
                      </button>
                    </li>
                  ))}
                </ul>
              )}
            </dd>
          </dl>
          {state.data.active_holds.length > 0 && (
            <label>
              Release reason{' '}
              <input value={releaseReason} onChange={(event) => setReleaseReason(event.target.value)} data-testid="release-reason" />
            </label>
          )}
          {release.isError && (
            <p className="error" role="alert">
              {errorMessage(release.error)}
            </p>
          )}

          <form className="inline" onSubmit={submitHold}>
            <label>
              Hold reason{' '}
              <input required value={holdReason} onChange={(event) => setHoldReason(event.target.value)} data-testid="hold-reason" />
            </label>
            <button type="submit" {...gated} disabled={gated.disabled || hold.isPending} data-testid="apply-hold">
              Apply hold
            </button>
            {hold.isError && (
              <span className="error" role="alert">
                {errorMessage(hold.error)}
              </span>
            )}
          </form>

          <form className="inline" onSubmit={submitExtend}>
            <label>
              New expiry{' '}
              <input type="datetime-local" required value={expiry} onChange={(event) => setExpiry(event.target.value)} data-testid="extend-date" />
            </label>
            <label>
              Reason{' '}
              <input required value={extendReason} onChange={(event) => setExtendReason(event.target.value)} data-testid="extend-reason" />
            </label>
            <button type="submit" {...gated} disabled={gated.disabled || extend.isPending} data-testid="extend-expiry">
              Extend
            </button>
            {extend.isError && (
              <span className="error" role="alert" data-testid="extend-error">
                {errorMessage(extend.error)}
              </span>
            )}
          </form>

          <h3>History</h3>
          {history.isError && <p className="error">{retentionError(history.error)}</p>}
          <ol className="timeline" data-testid="retention-history">
            {history.data?.events.map((event) => (
              <li key={event.sequence} data-testid="history-entry" data-event-type={event.event_type}>
                <span className="mono">#{event.sequence}</span> {formatTime(event.created_at)} <strong>{event.event_type}</strong> by {event.actor}
                {typeof event.payload === 'object' && event.payload !== null && 'reason' in event.payload
                  ? `: ${String((event.payload as { reason: unknown }).reason)}`
                  : ''}
              </li>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}
