/**
 * Numbers typed on a command line, checked before any work starts: one place for the rules and the
 * messages of every `saga` subcommand.
 */
import { badArgument } from '../errors';

/** An integer in [min, max] written as digits (no exponent, no fraction). */
export function cliInteger(name: string, text: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    const bounded = [min > Number.MIN_SAFE_INTEGER, max < Number.MAX_SAFE_INTEGER];
    const range = bounded[0] && bounded[1] ? ` in [${min}, ${max}]` : bounded[0] ? ` >= ${min}` : bounded[1] ? ` <= ${max}` : '';
    throw badArgument(`${name} must be an integer${range}, got "${text}"`);
  }
  return value;
}

/** A finite number > 0. */
export function cliPositive(name: string, text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0) throw badArgument(`${name} must be a positive number, got "${text}"`);
  return value;
}
