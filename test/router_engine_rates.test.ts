/**
 * What the gateway learns of an engine from its answers (lib/router/engine_rates.ts): characters per token
 * from usage.prompt_tokens, and the prefill rate from answer times against uncached and completion tokens,
 * the config's rate ruling until answers say otherwise.
 */
import { describe, expect, it } from 'vitest';
import { GATEWAY } from '../lib/constants';
import { EngineRates } from '../lib/router/engine_rates';
import { EngineState } from '../lib/router/engine_state';
import { parseGatewayConfig } from '../lib/router/config';

/** A deterministic stream of uniform numbers in [0, 1). */
function uniform(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('EngineRates', () => {
  it("starts from the gateway's rule and the config's rate", () => {
    const rates = new EngineRates(10_000);
    expect(rates.charsPerToken).toBe(GATEWAY.charsPerToken);
    expect(rates.prefillTokensPerS).toBeCloseTo(10_000, 6);
    expect(rates.prefillS(1000)).toBeCloseTo(0.1, 9);
  });

  it("learns the engine's characters per token from the prompt tokens it reports", () => {
    const rates = new EngineRates(10_000);
    for (let i = 0; i < 20; i++) rates.observe(2000 + 100 * i, 1000 + 50 * i, 0, 8, 0.5);
    expect(rates.charsPerToken).toBeGreaterThan(2);
    expect(rates.charsPerToken).toBeLessThan(2.2);
    // The gateway's estimate of a 4000-character prompt is 1000 tokens; the engine counts ~2000.
    expect(rates.engineTokens(1000)).toBeGreaterThan(1800);
  });

  it('fits the prefill rate from answer times against uncached and completion tokens, the config as its prior', () => {
    const rates = new EngineRates(10_000);
    const next = uniform(1);
    for (let i = 0; i < 40; i++) {
      const prompt = 200 + Math.floor(1800 * next());
      const cached = Math.floor(prompt * next() * 0.8);
      const completion = 1 + Math.floor(64 * next());
      const seconds = (0.05 + (prompt - cached) / 1500 + completion * 0.02) * (0.9 + 0.2 * next());
      rates.observe(prompt * 2, prompt, cached, completion, seconds);
    }
    expect(rates.prefillTokensPerS).toBeGreaterThan(1500 * 0.8);
    expect(rates.prefillTokensPerS).toBeLessThan(1500 * 1.25);
    expect(rates.answers).toBe(40);
  });

  it('one slow answer of a short prompt does not overturn the prior (a stub that waits, not a slow prefill)', () => {
    const rates = new EngineRates(10_000);
    rates.observe(80, 20, 0, 8, 0.8);
    expect(rates.prefillTokensPerS).toBeGreaterThan(5_000);
  });

  it('ignores answers without a prompt token count', () => {
    const rates = new EngineRates(2_000);
    rates.observe(400, 0, 0, 8, 5);
    expect(rates.answers).toBe(0);
    expect(rates.prefillTokensPerS).toBeCloseTo(2_000, 6);
  });
});

describe("an engine's prefill estimate (the stealing test's price)", () => {
  it("uses the learned characters per token and rate, not the config's guess", () => {
    const config = parseGatewayConfig({ engines: [{ name: 'e0', url: 'http://127.0.0.1:1', kind: 'openai', capacity: 2 }] });
    const engine = new EngineState(0, config.engines[0]);
    const before = engine.prefillEstimateS(1000, 200);
    expect(before).toBeCloseTo(800 / GATEWAY.prefillTokensPerS, 9);
    // An engine at 2 characters a token and 1,000 tokens/s.
    for (let i = 0; i < 60; i++) {
      const prompt = 500 + 25 * i;
      engine.rates.observe(prompt * 2, prompt, 0, 4, 0.01 + prompt / 1000 + 4 * 0.01);
    }
    const after = engine.prefillEstimateS(1000, 200);
    // 800 estimated tokens are ~1,600 of the engine's, at ~1,000/s: ~1.6 s, ~20x the config's price.
    expect(after).toBeGreaterThan(1.3);
    expect(after).toBeLessThan(2);
  });
});
