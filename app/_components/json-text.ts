import { parse as parseTolerant, printParseErrorCode, type ParseError } from 'jsonc-parser';

export type JsonTextResult = { ok: true; value: unknown } | { ok: false; line: number; column: number; message: string };

const PROBLEMS: Record<string, string> = {
  InvalidSymbol: 'unexpected character',
  InvalidNumberFormat: 'invalid number',
  PropertyNameExpected: 'expected a property name in double quotes',
  ValueExpected: 'expected a value',
  ColonExpected: 'expected ":"',
  CommaExpected: 'expected ","',
  CloseBraceExpected: 'expected "}"',
  CloseBracketExpected: 'expected "]"',
  EndOfFileExpected: 'unexpected text after the end of the JSON value',
  InvalidCommentToken: 'comments are not allowed in JSON',
  UnexpectedEndOfComment: 'comments are not allowed in JSON',
  UnexpectedEndOfString: 'unterminated string',
  UnexpectedEndOfNumber: 'incomplete number',
  InvalidUnicode: 'invalid \\u escape',
  InvalidEscapeCharacter: 'invalid escape character',
  InvalidCharacter: 'control characters must be escaped in strings',
};

/**
 * Parses JSON text and, when it is invalid, returns where: 1-based line and column and what was expected.
 * JSON.parse decides validity. Browsers word its errors differently and some give no position, so
 * jsonc-parser (set to strict JSON) locates the first error.
 */
export function parseJsonText(text: string): JsonTextResult {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    const errors: ParseError[] = [];
    parseTolerant(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
    const first = errors[0];
    // NOTE: if jsonc-parser accepts text that JSON.parse rejects, the error is placed at the end of the text.
    const offset = first ? first.offset : text.length;
    const problem = first ? (PROBLEMS[printParseErrorCode(first.error)] ?? printParseErrorCode(first.error)) : (error as Error).message;
    const before = text.slice(0, offset).split('\n');
    return { ok: false, line: before.length, column: before[before.length - 1].length + 1, message: problem };
  }
}

/** Formats a JSON syntax error as "line L, column C: problem". */
export function describeJsonError(result: { line: number; column: number; message: string }): string {
  return `line ${result.line}, column ${result.column}: ${result.message}`;
}
