import { describe, expect, it } from 'vitest';
import { Problem } from '@/server/http/problem';
import { findMalformedSegment, invalidTargetProblem, malformedPathProblem, pathOfRequestTarget, splitAbsoluteForm } from '@/scripts/percent-encoding.mjs';

describe('pathOfRequestTarget', () => {
  it.each([
    ['/api/v1/uploads/%', '/api/v1/uploads/%'],
    ['/api/v1/packages?name=%zz', '/api/v1/packages'],
    ['/a/b#%zz', '/a/b'],
    ['http://127.0.0.1:3000/api/v1/files/%E0?x=1', '/api/v1/files/%E0'],
    ['http://127.0.0.1:3000', '/'],
    ['http://127.0.0.1:3000?q=%', '/'],
    ['*', '*'],
  ])('%s has the path %s', (target, expected) => {
    expect(pathOfRequestTarget(target)).toBe(expected);
  });
});

describe('splitAbsoluteForm', () => {
  it.each([
    ['http://127.0.0.1:3000/api/v1/health?x=1', { authority: '127.0.0.1:3000', originForm: '/api/v1/health?x=1' }],
    ['http://example.net', { authority: 'example.net', originForm: '/' }],
    ['http://example.net?q=1', { authority: 'example.net', originForm: '/?q=1' }],
    ['/api/v1/health', null],
    ['*', null],
    ['example.net:443', null],
  ])('%s splits into %o', (target, expected) => {
    expect(splitAbsoluteForm(target)).toEqual(expected);
  });
});

describe('invalidTargetProblem', () => {
  it('matches the Problem schema', () => {
    const problem = invalidTargetProblem('*');
    expect(Problem.safeParse(problem).success).toBe(true);
    expect(problem.errors[0].rule).toBe('request_target');
  });
});

describe('findMalformedSegment', () => {
  it.each([
    ['/api/v1/uploads/%', '%'],
    ['/api/v1/packages/%zz', '%zz'],
    ['/api/v1/packages/%4', '%4'],
    ['/api/v1/files/%E0%A4%A/download', '%E0%A4%A'],
    ['/api/v1/files/%E0%A4/download', '%E0%A4'],
    ['/overlong/%C0%AF', '%C0%AF'],
    ['/surrogate/%ED%A0%80', '%ED%A0%80'],
    ['/continuation/%80', '%80'],
    ['/first-of-two/ok/%FF/%', '%FF'],
  ])('%s fails at %s', (path, segment) => {
    expect(findMalformedSegment(path)).toBe(segment);
  });

  it.each(['/', '/api/v1/health', '/a%20b', '/..%2Fx', '/..%5Cx', '/x%00y', '/%E0%A4%A8', '/%F0%9F%98%80', '/100%25'])('%s decodes', (path) => {
    expect(findMalformedSegment(path)).toBeNull();
  });
});

describe('malformedPathProblem', () => {
  it('matches the Problem schema', () => {
    const body = malformedPathProblem('/api/v1/packages/%zz', '%zz');
    expect(Problem.safeParse(body).success).toBe(true);
    expect(body.status).toBe(400);
    expect(body.detail).toContain('"/api/v1/packages/%zz"');
    expect(body.errors).toEqual([{ field: '(path)', rule: 'percent_encoding', message: expect.stringContaining('"%zz"') }]);
  });
});
