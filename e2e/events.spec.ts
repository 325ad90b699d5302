import type { Route } from '@playwright/test';
import { expect, test } from './support/fixtures';

const STREAM = /\/api\/v1\/events\/stream(\?|$)/;

test('stream rejected with 503 retries', async ({ console: ui, page, tokens, adminApi }) => {
  let rejecting = true;
  await page.route(STREAM, (route: Route) =>
    rejecting
      ? route.fulfill({
          status: 503,
          headers: { 'Content-Type': 'application/problem+json', 'Retry-After': '1' },
          body: JSON.stringify({ type: 'about:blank', title: 'Database unavailable', status: 503, detail: 'The database cannot be reached; retry later.' }),
        })
      : route.continue(),
  );
  await ui.signIn(tokens.admin);
  await page.goto('/events');
  const stopped = page.getByTestId('event-stream-stopped');
  await expect(stopped).toContainText('Database unavailable: The database cannot be reached; retry later.');
  await expect(stopped).toContainText('Trying again in 1 s.');
  await expect(page.getByTestId('event-connection')).toHaveText('stopped');

  rejecting = false;
  await expect(page.getByTestId('event-connection')).toHaveText('live');
  await expect(stopped).toHaveCount(0);
  const { id } = await adminApi.createPackage('e2e-stream-after-503');
  await expect(page.locator(`[data-testid="event-row"][data-subject-id="${id}"]`)).toBeVisible();
});

test('proxy page instead of stream retries', async ({ console: ui, page, tokens }) => {
  let proxying = true;
  await page.route(STREAM, (route: Route) =>
    proxying ? route.fulfill({ status: 200, headers: { 'Content-Type': 'text/html' }, body: '<html>Sign in to the proxy</html>' }) : route.continue(),
  );
  await ui.signIn(tokens.admin);
  await page.goto('/events');
  const stopped = page.getByTestId('event-stream-stopped');
  await expect(stopped).toContainText('The server sent Content-Type text/html instead of an event stream');
  await expect(stopped).toContainText('Trying again in 1 s.');

  proxying = false;
  await expect(page.getByTestId('event-connection')).toHaveText('live');
});

test('stream beyond the log restarts', async ({ console: ui, page, tokens, adminApi }) => {
  const { id } = await adminApi.createPackage('e2e-stream-restored');
  // The first response shows an event from a log that was longer, as before a restore from an older
  // backup, and ends. EventSource then reconnects to the real server with that event's id.
  let served = false;
  await page.route(STREAM, (route: Route) => {
    if (served) return route.continue();
    served = true;
    const event = {
      sequence: 99_999_999,
      created_at: new Date().toISOString(),
      event_type: 'package.created',
      subject_kind: 'package',
      subject_id: 'lost-with-the-restore',
      actor: 'e2e',
      payload: {},
    };
    return route.fulfill({
      status: 200,
      headers: { 'Content-Type': 'text/event-stream' },
      body: `retry: 100\nid: ${event.sequence}\ndata: ${JSON.stringify(event)}\n\n`,
    });
  });
  await ui.signIn(tokens.admin);
  await page.goto('/events');

  await expect(page.getByTestId('event-stream-notice')).toContainText('before the last event shown (99999999)');
  await expect(page.getByTestId('event-connection')).toHaveText('live');
  await expect(page.locator('[data-testid="event-row"][data-subject-id="lost-with-the-restore"]')).toHaveCount(0);
  await expect(page.locator(`[data-testid="event-row"][data-subject-id="${id}"]`)).toBeVisible();
});

test('invalid filter stops the stream', async ({ console: ui, page, tokens }) => {
  await ui.signIn(tokens.admin);
  await page.goto(`/events?package=${'x'.repeat(300)}`);
  const stopped = page.getByTestId('event-stream-stopped');
  await expect(stopped).toContainText('subject_id');
  await expect(stopped).not.toContainText('Trying again');
  await expect(page.getByTestId('event-connection')).toHaveText('stopped');
});
