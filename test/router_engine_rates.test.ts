/**
 * What the gateway learns of an engine from its answers (lib/router/engine_rates.ts): characters per token
 * from usage.prompt_tokens, and the prefill rate from answer times against uncached and completion tokens,
 * the config's rate ruling until answers say otherwise.
 */
import { describe, expect, it } from 'vitest';
import { GATEWAY, ROUTING } from '../lib/constants';
import { EngineRates } from '../lib/router/engine_rates';
import { EngineState, type QueuedCall } from '../lib/router/engine_state';
import type { CallInfo } from '../lib/policy/types';
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

  it("prices an output token in prefill tokens for fair share: plain tokens before answers, then the fit's decode cost", () => {
    const rates = new EngineRates(10_000);
    expect(rates.decodePrice).toBe(1);
    const next = uniform(2);
    for (let i = 0; i < 60; i++) {
      const prompt = 200 + Math.floor(1800 * next());
      const cached = Math.floor(prompt * next() * 0.8);
      const completion = 1 + Math.floor(64 * next());
      // 0.05 s a call, 1,500 prompt tokens/s, 20 ms a completion token; two characters a token.
      rates.observe(prompt * 2, prompt, cached, completion, 0.05 + (prompt - cached) / 1500 + completion * 0.02);
    }
    // The gateway estimates GATEWAY.charsPerToken characters a token, the engine counts two: an estimated token is
    // charsPerToken / 2 engine tokens, so a completion token costs 0.02 s / (charsPerToken / 2 / 1500 s).
    const estimatedTokenS = GATEWAY.charsPerToken / 2 / 1500;
    // (the ridge prior pulls the prefill cost towards the config's 10,000 tokens/s, as in the fit's test above)
    expect(rates.decodePrice).toBeGreaterThan((0.02 / estimatedTokenS) * 0.8);
    expect(rates.decodePrice).toBeLessThan((0.02 / estimatedTokenS) * 1.25);
    // A decode step never weighs less than a prefill token, even when answers say so.
    const cheap = new EngineRates(10_000);
    for (let i = 0; i < 60; i++) cheap.observe(4000, 2000, 0, 1 + (i % 50), 2000 / 1500);
    expect(cheap.decodePrice).toBe(1);
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

describe("an engine's predicted service and wait (the stealing test's delay saved)", () => {
  /** A call of `tokens` estimated prompt tokens in `blocks`-hash blocks of its session. */
  function gatewayCall(session: number, tokens: number): CallInfo {
    const blocks = Math.ceil(tokens / 16);
    return {
      taskIndex: session,
      callIndex: 0,
      session,
      tenant: 't',
      kind: 'k',
      arrivalS: 0,
      promptTokens: tokens,
      outputTokens: 0,
      blockHashes: BigUint64Array.from({ length: blocks }, (_, i) => BigInt(session * 100_000 + i + 1)),
    };
  }
  let order = 0;
  function job(call: CallInfo, maxTokens?: number): QueuedCall {
    return { call, enqueuedS: 0, priority: 0, tieBreak: 0, order: order++, maxTokens };
  }
  /** An engine whose answers took 0.1 s + 1 ms per uncached token + 20 ms per completion token. */
  function taught(kind: 'openai' | 'saga-engine' = 'openai', capacity = 2): EngineState {
    const config = parseGatewayConfig({ engines: [{ name: 'e0', url: 'http://127.0.0.1:1', kind, capacity }] });
    const engine = new EngineState(0, config.engines[0]);
    const next = uniform(3);
    for (let i = 0; i < 80; i++) {
      const prompt = 100 + Math.floor(1900 * next());
      const completion = 1 + Math.floor(60 * next());
      engine.rates.observe(prompt * GATEWAY.charsPerToken, prompt, 0, completion, 0.1 + prompt / 1000 + completion * 0.02);
    }
    return engine;
  }

  it('fits the whole answer time: constant, prefill and decoding', () => {
    const rates = taught().rates;
    expect(rates.serviceS(1000, 10)).toBeGreaterThan(1.3 * 0.9);
    expect(rates.serviceS(1000, 10)).toBeLessThan(1.3 * 1.1);
    expect(rates.serviceS(0, 50)).toBeGreaterThan(1.1 * 0.8);
    expect(rates.serviceS(0, 50)).toBeLessThan(1.1 * 1.2);
    expect(rates.meanCompletionTokens).toBeGreaterThan(20);
    expect(rates.meanCompletionTokens).toBeLessThan(40);
  });

  it('predicts when a queued call starts from the calls running and those ahead of it', () => {
    const engine = taught();
    const a = job(gatewayCall(1, 1000), 10); // ~1.3 s
    const b = job(gatewayCall(2, 500), 10); // ~0.8 s
    engine.recordRunning(a, 0);
    engine.recordRunning(b, 0);
    const c = job(gatewayCall(3, 2000), 10); // ~2.3 s
    const d = job(gatewayCall(4, 100), 10);
    engine.queue.push(c, d);
    const service = (tokens: number) => engine.rates.serviceS(tokens, 10);
    // At 0.5 s: b frees its place first (~0.3 s from now), c takes it; d waits for a's (~0.8 s).
    expect(engine.admissionWaitS(c.call, 0.5)).toBeCloseTo(service(500) - 0.5, 9);
    expect(engine.admissionWaitS(d.call, 0.5)).toBeCloseTo(service(1000) - 0.5, 9);
    // A new call comes after both: d takes a's place when it frees, and frees it again after its own service.
    expect(engine.admissionWaitS(undefined, 0.5)).toBeCloseTo(service(1000) - 0.5 + service(100), 9);
    // A call ahead by priority goes first whatever its arrival.
    d.priority = -1;
    expect(engine.admissionWaitS(d.call, 0.5)).toBeCloseTo(service(500) - 0.5, 9);
    expect(engine.admissionWaitS(c.call, 0.5)).toBeCloseTo(service(1000) - 0.5, 9);
    // Nothing running, nothing queued: it starts at once.
    engine.recordEnded(a);
    engine.recordEnded(b);
    engine.queue.length = 0;
    expect(engine.admissionWaitS(undefined, 1)).toBe(0);
  });

  it('expects a call that overran its prediction to run as long again as it overran', () => {
    const engine = taught();
    const a = job(gatewayCall(1, 1000), 10); // ~1.3 s
    engine.recordRunning(a, 0);
    engine.recordRunning(job(gatewayCall(2, 1000), 10), 0);
    const overrun = 2 - engine.rates.serviceS(1000, 10);
    expect(overrun).toBeGreaterThan(0.5);
    expect(engine.admissionWaitS(undefined, 2)).toBeCloseTo(overrun, 9);
  });

  it('a queued call whose prefix the engine was sent is expected to take less', () => {
    const engine = taught('openai', 1);
    const first = gatewayCall(1, 1600);
    engine.recordSent(first.blockHashes);
    engine.recordRunning(job(gatewayCall(8, 100), 1), 0);
    const cachedAhead = job({ ...first, callIndex: 1 }, 1);
    const coldAhead = job(gatewayCall(2, 1600), 1);
    engine.queue.push(cachedAhead);
    const afterCached = engine.admissionWaitS(undefined, 0);
    engine.queue[0] = coldAhead;
    expect(engine.admissionWaitS(undefined, 0)).toBeGreaterThan(afterCached + 1);
  });

  it('prices the session a move pushes out of an engine that holds whole sessions', () => {
    const engine = taught('saga-engine');
    const one = job(gatewayCall(1, 1000), 1);
    const two = job(gatewayCall(2, 500), 1);
    engine.recordRunning(one, 0);
    engine.recordRunning(two, 0);
    engine.recordEnded(two);
    const newcomer = gatewayCall(3, 100);
    // Both slots taken; session 1 still running, so session 2 (500 tokens, ~0.5 s) would go.
    expect(engine.displacementS(newcomer)).toBeCloseTo(engine.rates.prefillS(500), 9);
    expect(engine.displacementS(newcomer)).toBeGreaterThan(0.4);
    engine.recordEnded(one);
    // Now the least recently sent, session 1.
    expect(engine.displacementS(newcomer)).toBeCloseTo(engine.rates.prefillS(1000), 9);
    // A session already here pushes nobody out; nor does one when a slot is free.
    expect(engine.displacementS(gatewayCall(2, 600))).toBe(0);
    engine.forgetSession(1);
    expect(engine.displacementS(newcomer)).toBe(0);
    // Only the last two sessions sent here hold slots: session 1 again (its call running), then session 4.
    engine.recordRunning(job(gatewayCall(1, 1000), 1), 1);
    const four = job(gatewayCall(4, 300), 1);
    engine.recordRunning(four, 2);
    engine.recordEnded(four);
    // Slots: session 1 (running), session 4. Session 2 was pushed out: it costs nothing more and pushes out 4.
    expect(engine.displacementS(gatewayCall(2, 500))).toBeCloseTo(engine.rates.prefillS(300), 9);
    // And what was sent of session 2's prompt is not cached for it any more; session 4's is.
    const two2 = gatewayCall(2, 500);
    const four2 = gatewayCall(4, 300);
    engine.recordSent(two2.blockHashes);
    engine.recordSent(four2.blockHashes);
    expect(engine.cachedPrefixBlocks(two2.blockHashes, 2)).toBe(0);
    expect(engine.cachedPrefixBlocks(four2.blockHashes, 4)).toBe(four2.blockHashes.length);
    // A paged engine (vLLM, SGLang, any OpenAI server) evicts blocks, not sessions: nothing to price.
    const paged = taught('openai');
    paged.recordRunning(job(gatewayCall(1, 1000), 1), 0);
    paged.recordRunning(job(gatewayCall(2, 1000), 1), 0);
    expect(paged.displacementS(newcomer)).toBe(0);
  });

  it("prices the place a call holds for its whole service by the arrivals that find every place taken", () => {
    const engine = taught('openai', 2);
    const moved = gatewayCall(5, 1000);
    // Nobody arriving: nobody waits for the place.
    expect(engine.heldPlaceDelayS(moved, 0)).toBe(0);
    for (let t = 0; t < 100; t += 0.5) engine.recordArrival(t); // ~2 calls/s
    const serviceS = engine.rates.serviceS(1000, engine.rates.meanCompletionTokens);
    const rate = engine.arrivalsPerS(100);
    // One place left free after the move: E[max(0, N - 1)] for N ~ Poisson(rate * S), each waiting S/2.
    const oneFree = engine.heldPlaceDelayS(moved, 100);
    expect(oneFree).toBeCloseTo(((rate * serviceS - 1 + Math.exp(-rate * serviceS)) * serviceS) / 2, 9);
    // A call running here takes that place: every arrival during S waits.
    engine.recordRunning(job(gatewayCall(6, 100), 1), 100);
    expect(engine.heldPlaceDelayS(moved, 100)).toBeCloseTo((rate * serviceS * serviceS) / 2, 9);
    expect(engine.heldPlaceDelayS(moved, 100)).toBeGreaterThan(oneFree);
    // A cached prompt holds the place for less time.
    engine.recordSent(moved.blockHashes);
    expect(engine.heldPlaceDelayS(moved, 100)).toBeLessThan((rate * serviceS * serviceS) / 2);
  });

  it('credits a queued call leaving with what the calls behind it gain, and nothing to one at the back', () => {
    const engine = taught('openai', 2);
    const calls = [gatewayCall(1, 1000), gatewayCall(2, 1000), gatewayCall(3, 1000)];
    for (const c of calls) engine.queue.push(job(c));
    const serviceS = engine.rates.serviceS(1000, engine.rates.meanCompletionTokens);
    // Two behind the first, sharing two places: each sent S/2 sooner.
    expect(engine.departureGainS(calls[0])).toBeCloseTo((2 * serviceS) / 2, 9);
    expect(engine.departureGainS(calls[1])).toBeCloseTo(serviceS / 2, 9);
    expect(engine.departureGainS(calls[2])).toBe(0);
    // A call not queued here.
    expect(engine.departureGainS(gatewayCall(4, 1000))).toBe(0);
  });

  it('reports the calls placed on it lately, at ROUTING.arrivalRateTimeConstantS', () => {
    const engine = taught();
    expect(engine.arrivalsPerS(0)).toBe(0);
    for (let t = 0; t < 10 * ROUTING.arrivalRateTimeConstantS; t += 0.25) engine.recordArrival(t);
    expect(engine.arrivalsPerS(10 * ROUTING.arrivalRateTimeConstantS)).toBeGreaterThan(3.8);
    expect(engine.arrivalsPerS(10 * ROUTING.arrivalRateTimeConstantS)).toBeLessThan(4.2);
    // Quiet for a while: the rate fades.
    expect(engine.arrivalsPerS(15 * ROUTING.arrivalRateTimeConstantS)).toBeLessThan(0.1);
  });
});
