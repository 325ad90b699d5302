import type { ValidationIssue } from '../server/errors';

export declare const PERCENT_ENCODING_RULE: 'percent_encoding';
export declare function pathOfRequestTarget(target: string): string;
export declare function findMalformedSegment(path: string): string | null;
export declare function malformedPathProblem(
  path: string,
  segment: string,
): { type: 'about:blank'; title: string; status: 400; detail: string; errors: ValidationIssue[] };
export declare function splitAbsoluteForm(target: string): { authority: string; originForm: string } | null;
export declare function invalidTargetProblem(target: string): {
  type: 'about:blank';
  title: string;
  status: 400;
  detail: string;
  errors: ValidationIssue[];
};
