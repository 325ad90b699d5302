import { describe, expect, it } from 'vitest';
import { describeExpiry, formatClassDuration, formatDuration } from '@/app/_components/api';
import { describeJsonError, parseJsonText } from '@/app/_components/json-text';

describe('formatDuration', () => {
  it.each([
    [7 * 86_400, '7 days'],
    [86_400, '1 day'],
    [3_600, '1 hour'],
    [5_400, '1 hour 30 minutes'],
    [90_000, '1 day 1 hour'],
    [45, '45 seconds'],
    [86_401, '1 day 1 second'],
    [0, '0 seconds'],
  ])('formats %i seconds as %s', (seconds, expected) => {
    expect(formatDuration(seconds)).toBe(expected);
  });

  it('describes a class without expiry', () => {
    expect(formatClassDuration(null)).toBe('no expiry');
  });
});

describe('describeExpiry', () => {
  const classes = [
    { class_id: 'standard', default_duration_seconds: 365 * 86_400, deletion_strategy: 'delete' as const },
    { class_id: 'permanent', default_duration_seconds: null, deletion_strategy: 'delete' as const },
  ];

  it('says an open package gets its expiry at finalize', () => {
    expect(describeExpiry({ status: 'open', expires_at: null, retention_class: 'standard' }, classes)).toBe(
      'set at finalize (class standard: 365 days)',
    );
  });

  it('says an open package of a class without expiry never expires', () => {
    expect(describeExpiry({ status: 'open', expires_at: null, retention_class: 'permanent' }, classes)).toBe(
      'never (class permanent has no expiry)',
    );
  });

  it('names the class while classes are loading', () => {
    expect(describeExpiry({ status: 'open', expires_at: null, retention_class: 'standard' }, undefined)).toBe('set at finalize (class standard)');
  });

  it('shows the expiry of a finalized package', () => {
    expect(describeExpiry({ status: 'finalized', expires_at: '2030-01-01T00:00:00.000Z', retention_class: 'standard' }, classes)).toBe(
      '2030-01-01 00:00:00Z',
    );
    expect(describeExpiry({ status: 'finalized', expires_at: null, retention_class: 'permanent' }, classes)).toBe('never');
  });
});

describe('parseJsonText', () => {
  it('returns the value of valid JSON', () => {
    expect(parseJsonText('{"a": [1, 2]}')).toEqual({ ok: true, value: { a: [1, 2] } });
  });

  it.each([
    ['{\n  "a": 1\n  "b": 2\n}', 3, 3, 'expected ","'],
    ['{"a": 1,}', 1, 9, 'expected a property name in double quotes'],
    ["{'a': 1}", 1, 2, 'unexpected character'],
    ['{"a": ', 1, 7, 'expected a value'],
    ['{"a": 1} 2', 1, 10, 'unexpected text after the end of the JSON value'],
    ['{"a": "x\ty"}', 1, 7, 'control characters must be escaped in strings'],
    ['// note\n{}', 1, 1, 'comments are not allowed in JSON'],
    ['', 1, 1, 'expected a value'],
  ])('locates the error in %j', (text, line, column, message) => {
    const result = parseJsonText(text);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.line).toBe(line);
    expect(result.column).toBe(column);
    expect(result.message).toBe(message);
    expect(describeJsonError(result)).toBe(`line ${line}, column ${column}: ${message}`);
  });
});
