import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BudgetClock, readBudgetRecord } from '../../src/train/timeBudget';

function tmpFile(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'time-budget-')), 'budget.json');
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('readBudgetRecord', () => {
  it('starts a fresh record when the file does not exist', () => {
    expect(readBudgetRecord(tmpFile(), 'latent', 90)).toEqual({ design: 'latent', budgetMinutes: 90, spentSeconds: 0, stages: {}, finished: false });
  });

  it('refuses corrupt files, records of another job or budget, and bad budgets', () => {
    const file = tmpFile();
    fs.writeFileSync(file, '{"design": "latent", "budgetMin');
    expect(() => readBudgetRecord(file, 'latent', 90)).toThrow(/budget\.json: not valid JSON/);
    fs.writeFileSync(file, JSON.stringify({ design: 'latent', budgetMinutes: 90, spentSeconds: -3, stages: {}, finished: false }));
    expect(() => readBudgetRecord(file, 'latent', 90)).toThrow(/not a time-budget record: spentSeconds must be a number >= 0, got -3/);
    fs.writeFileSync(file, JSON.stringify({ design: 'latent', budgetMinutes: 90, spentSeconds: 3, stages: { ae: 'x' }, finished: false }));
    expect(() => readBudgetRecord(file, 'latent', 90)).toThrow(/not a time-budget record: stages\.ae must be a number >= 0, got "x"/);
    fs.writeFileSync(file, '[1, 2]');
    expect(() => readBudgetRecord(file, 'latent', 90)).toThrow(/expected a JSON object/);
    fs.writeFileSync(file, JSON.stringify({ design: 'latent', budgetMinutes: 90, spentSeconds: 3, stages: {}, finished: false }));
    expect(() => readBudgetRecord(file, 'cascade', 90)).toThrow(/written for 'latent' with a budget of 90 min, resumed as 'cascade' with 90 min/);
    expect(() => readBudgetRecord(file, 'latent', 60)).toThrow(/cannot change mid-run/);
    expect(() => readBudgetRecord(file, 'latent', 0)).toThrow(/budgetMinutes must be a positive number, got 0/);
    expect(readBudgetRecord(file, 'latent', 90).spentSeconds).toBe(3);
  });
});

describe('BudgetClock', () => {
  it('counts stages on top of the time recorded before, saves the record, and stops counting at stop()', async () => {
    const file = tmpFile();
    fs.writeFileSync(file, JSON.stringify({ design: 'd', budgetMinutes: 10, spentSeconds: 30, stages: { first: 30 }, finished: false }));
    const clock = new BudgetClock(file, readBudgetRecord(file, 'd', 10));
    const value = await clock.stage('second', async () => {
      await sleep(120);
      return 7;
    });
    expect(value).toBe(7);
    await expect(clock.stage('second', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom'); // a failed stage still counts
    const saved = readBudgetRecord(file, 'd', 10);
    expect(saved.stages.first).toBe(30);
    expect(saved.stages.second).toBeGreaterThanOrEqual(0.1);
    expect(saved.stages.second).toBeLessThan(5);
    expect(saved.spentSeconds).toBeGreaterThanOrEqual(30.1);
    clock.stop();
    const frozen = clock.spent();
    expect(clock.leftMinutes()).toBeCloseTo(10 - frozen / 60, 9); // stopped: both read the same frozen time
    await sleep(30);
    expect(clock.spent()).toBe(frozen);
    clock.save(true);
    const done = readBudgetRecord(file, 'd', 10);
    expect(done.finished).toBe(true);
    expect(done.spentSeconds).toBeCloseTo(frozen, 6);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['budget.json']); // no temp file left behind
  });

  it('saves made during a stage already credit it (a killed run keeps the stage time it saved)', async () => {
    const file = tmpFile();
    fs.writeFileSync(file, JSON.stringify({ design: 'd', budgetMinutes: 10, spentSeconds: 5, stages: { s: 5 }, finished: false }));
    const clock = new BudgetClock(file, readBudgetRecord(file, 'd', 10));
    await clock.stage('s', async () => {
      await sleep(60);
      clock.save(); // what tick() does while the stage runs
      const mid = readBudgetRecord(file, 'd', 10);
      expect(mid.stages.s).toBeGreaterThanOrEqual(5.05);
      // all the time so far went to this stage (but the instants between the constructor and stage(): ms on a busy machine)
      expect(mid.stages.s).toBeCloseTo(mid.spentSeconds, 1);
    });
    const done = readBudgetRecord(file, 'd', 10);
    expect(done.stages.s).toBeCloseTo(done.spentSeconds, 1); // credited once, not twice (twice would add ~0.06 s)
  });

  it('tick() saves only when saveEverySeconds have passed', async () => {
    const file = tmpFile();
    const clock = new BudgetClock(file, readBudgetRecord(file, 'd', 10), { saveEverySeconds: 0.1 });
    clock.tick();
    expect(fs.existsSync(file)).toBe(false);
    await sleep(150);
    clock.tick();
    expect(readBudgetRecord(file, 'd', 10).spentSeconds).toBeGreaterThanOrEqual(0.1);
  });

  it('puts the deadline where the recorded time leaves it, already passed when the budget is used', async () => {
    const file = tmpFile();
    fs.writeFileSync(file, JSON.stringify({ design: 'd', budgetMinutes: 1, spentSeconds: 45, stages: {}, finished: false }));
    const t0 = Date.now();
    const clock = new BudgetClock(file, readBudgetRecord(file, 'd', 1));
    expect(clock.deadline - t0).toBeGreaterThanOrEqual(15_000 - 50);
    expect(clock.deadline - t0).toBeLessThanOrEqual(15_000 + 50);
    expect(clock.deadlineReached).toBe(false);
    fs.writeFileSync(file, JSON.stringify({ design: 'd', budgetMinutes: 1, spentSeconds: 75, stages: {}, finished: false }));
    const over = new BudgetClock(file, readBudgetRecord(file, 'd', 1));
    expect(over.deadlineReached).toBe(true);
    expect(over.leftMinutes()).toBeCloseTo(-0.25, 2); // 75 s of a 60 s budget
  });
});
