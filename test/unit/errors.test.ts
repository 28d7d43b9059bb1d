import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, StrataError, asStrataError, invalid, type ErrorCode } from '../../src/errors.js';

const CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

describe('the error catalogue', () => {
  it('names every code STRATA_ + upper snake case, with a kind and a summary', () => {
    expect(CODES.length).toBeGreaterThan(20);
    for (const code of CODES) {
      expect(code).toMatch(/^STRATA_[A-Z0-9]+(_[A-Z0-9]+)*$/);
      expect(ERROR_CATALOGUE[code].summary.length).toBeGreaterThan(0);
    }
  });
});

describe('StrataError', () => {
  it('takes its kind from the catalogue and keeps code, message, field and cause', () => {
    const cause = new Error('disk on fire');
    const error = new StrataError('STRATA_STORAGE_UNAVAILABLE', 'L3 read failed', { field: 'entities.card_id', cause });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('StrataError');
    expect(error.code).toBe('STRATA_STORAGE_UNAVAILABLE');
    expect(error.kind).toBe('unavailable');
    expect(error.message).toBe('L3 read failed');
    expect(error.field).toBe('entities.card_id');
    expect(error.cause).toBe(cause);
  });

  it.each(CODES)('%s gets the kind the catalogue gives it', (code) => {
    expect(new StrataError(code, 'x').kind).toBe(ERROR_CATALOGUE[code].kind);
  });

  it('has no field or cause unless given', () => {
    const error = new StrataError('STRATA_NO_FEATURES', 'none');
    expect(error.field).toBeUndefined();
    expect('cause' in error).toBe(false);
  });
});

describe('invalid', () => {
  it('prefixes the message with the field and records the field', () => {
    const error = invalid('STRATA_DUPLICATE_FEATURE', 'features[2]', 'card_profile:credit_limit is requested twice');
    expect(error.code).toBe('STRATA_DUPLICATE_FEATURE');
    expect(error.kind).toBe('invalid_argument');
    expect(error.field).toBe('features[2]');
    expect(error.message).toBe('features[2]: card_profile:credit_limit is requested twice');
  });
});

describe('asStrataError', () => {
  it('returns a StrataError unchanged', () => {
    const error = new StrataError('STRATA_NO_FEATURES', 'none');
    expect(asStrataError(error)).toBe(error);
  });

  it('wraps a plain Error as STRATA_INTERNAL, keeping its message and the error as cause', () => {
    const plain = new TypeError('undefined is not a function');
    const wrapped = asStrataError(plain);
    expect(wrapped).toBeInstanceOf(StrataError);
    expect(wrapped.code).toBe('STRATA_INTERNAL');
    expect(wrapped.kind).toBe('internal');
    expect(wrapped.message).toBe('internal error: undefined is not a function');
    expect(wrapped.cause).toBe(plain);
    expect(wrapped.field).toBeUndefined();
  });

  it.each([
    ['a string', 'boom', 'internal error: boom'],
    ['a number', 42, 'internal error: 42'],
    ['undefined', undefined, 'internal error: undefined'],
    ['null', null, 'internal error: null'],
  ])('wraps %s thrown as STRATA_INTERNAL', (_, thrown, message) => {
    const wrapped = asStrataError(thrown);
    expect(wrapped.code).toBe('STRATA_INTERNAL');
    expect(wrapped.message).toBe(message);
  });
});
