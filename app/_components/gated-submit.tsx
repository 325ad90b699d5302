'use client';

/**
 * Renders a form's submit button, disabled while the session lacks the scope (with the reason beside it
 * and in its title), while `blocked` (invalid input) or while the request is pending.
 */
export function GatedSubmit(props: {
  gate: { allowed: boolean; reason: string };
  /** Prefix of the id of the reason paragraph, unique on the page. */
  id: string;
  blocked: boolean;
  pending: boolean;
  label: string;
  pendingLabel: string;
  testId: string;
}) {
  const { gate, id, blocked, pending, label, pendingLabel, testId } = props;
  return (
    <>
      <button
        type="submit"
        disabled={!gate.allowed || pending || blocked}
        title={gate.reason || undefined}
        aria-describedby={gate.allowed ? undefined : `${id}-scope-reason`}
        data-testid={testId}
      >
        {pending ? pendingLabel : label}
      </button>
      {!gate.allowed && (
        <p id={`${id}-scope-reason`} className="hint">
          {gate.reason}
        </p>
      )}
    </>
  );
}
