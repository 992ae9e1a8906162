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
    expect(() => readBudgetRecord(file, 'latent', 90)).toThrow(/not a time-budget record/);
    fs.writeFileSync(file, JSON.stringify({ design: 'latent', budgetMinutes: 90, spentSeconds: 3, stages: { ae: 'x' }, finished: false }));
    expect(() => readBudgetRecord(file, 'latent', 90)).toThrow(/not a time-budget record/);
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
    let deadlines = 0;
    const clock = new BudgetClock(file, readBudgetRecord(file, 'd', 10), { onDeadline: () => deadlines++ });
    try {
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
      expect(clock.leftMinutes()).toBeCloseTo(10 - clock.spent() / 60, 6);
      clock.stop();
      const frozen = clock.spent();
      await sleep(30);
      expect(clock.spent()).toBe(frozen);
      await clock.save(true);
      const done = readBudgetRecord(file, 'd', 10);
      expect(done.finished).toBe(true);
      expect(done.spentSeconds).toBeCloseTo(frozen, 6);
      expect(deadlines).toBe(0);
    } finally {
      clock.stop();
    }
  });

  it('calls onDeadline once the budget is used, at once when a restart finds it used already', async () => {
    const file = tmpFile();
    let fired = 0;
    const clock = new BudgetClock(file, readBudgetRecord(file, 'd', 0.005), { onDeadline: () => fired++ }); // 300 ms
    await sleep(40);
    expect(fired).toBe(0);
    expect(clock.deadlineReached).toBe(false);
    await sleep(600);
    expect(fired).toBe(1);
    expect(clock.deadlineReached).toBe(true);
    clock.stop();
    await clock.save();
    let firedAgain = 0;
    const again = new BudgetClock(file, readBudgetRecord(file, 'd', 0.005), { onDeadline: () => firedAgain++ });
    await sleep(20);
    again.stop();
    expect(firedAgain).toBe(1);
  });
});
