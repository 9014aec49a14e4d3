import test from "ava";
import { parseIptablesSave, type Rule } from "./iptables-rules.js";
import { remainingOf, RestoreBatcher } from "./restore-batcher.js";

const accept = (n: number): Rule => ({ table: "filter", chain: "RIKLET-FORWARD", spec: `-s 10.220.0.${n}/32 -j ACCEPT` });
const dnat = (n: number): Rule => ({ table: "nat", chain: "RIKLET-P15", spec: `-p tcp -m tcp --dport ${8000 + n} -j DNAT --to-destination 10.220.0.${n}:80` });

/**
 * iptables-restore as the kernel sees it: each table block is one transaction that fails
 * whole on a -D of a missing rule, and the blocks before it stay committed.
 */
function fakeKernel() {
  const rules: string[] = [];
  const calls: string[] = [];
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  const restore = async (text: string) => {
    calls.push(text);
    if (gate !== undefined) await gate;
    let table = "";
    let pending: string[] = [];
    for (const line of text.split("\n")) {
      if (line.startsWith("*")) [table, pending] = [line.slice(1), [...rules]];
      else if (line === "COMMIT") rules.splice(0, rules.length, ...pending);
      else if (line.startsWith("-A MISSING ")) throw new Error("iptables-restore: line 2: chain MISSING does not exist");
      else if (line.startsWith("-A ")) pending.push(`${table} ${line.slice(3)}`);
      else if (line.startsWith("-D ")) {
        const at = pending.indexOf(`${table} ${line.slice(3)}`);
        if (at === -1) throw new Error(`iptables-restore: line ${line}: rule not found`);
        pending.splice(at, 1);
      }
    }
  };
  const save = async () =>
    ["nat", "filter"].map((t) => `*${t}\n${rules.filter((r) => r.startsWith(`${t} `)).map((r) => `-A ${r.slice(t.length + 1)}`).join("\n")}\nCOMMIT`).join("\n");
  return {
    rules,
    calls,
    restore,
    save,
    hold: () => (gate = new Promise<void>((resolve) => (open = resolve))),
    release: () => {
      gate = undefined;
      open?.();
    },
  };
}

const key = (rule: Rule) => `${rule.table} ${rule.chain} ${rule.spec}`;

test("batches that arrive while a restore runs go together in the next one", async (t) => {
  const kernel = fakeKernel();
  const batcher = new RestoreBatcher(kernel.restore, kernel.save);
  kernel.hold();
  const first = batcher.submit({ append: [accept(1)] });
  const later = [2, 3, 4].map((n) => batcher.submit({ append: [accept(n)] }));
  kernel.release();
  await Promise.all([first, ...later]);
  t.is(kernel.calls.length, 2);
  t.is(kernel.calls[1], "*filter\n" + [2, 3, 4].map((n) => `-A RIKLET-FORWARD -s 10.220.0.${n}/32 -j ACCEPT`).join("\n") + "\nCOMMIT\n");
});

test("when a merged restore fails, each batch is retried alone for what is left, and only the bad one fails", async (t) => {
  const kernel = fakeKernel();
  const batcher = new RestoreBatcher(kernel.restore, kernel.save);
  await batcher.submit({ append: [dnat(2), accept(2), dnat(4), accept(4)] });
  kernel.hold();
  const first = batcher.submit({ append: [accept(1)] });
  // The bad one fails the filter block, after the nat block (the good ones' DNATs) committed.
  const good = batcher.submit({ delete: [dnat(2), accept(2)] });
  const bad = batcher.submit({ append: [{ table: "filter", chain: "MISSING", spec: "-j ACCEPT" }] });
  const alsoGood = batcher.submit({ delete: [dnat(4), accept(4)] });
  kernel.release();
  await first;
  await t.notThrowsAsync(good);
  await t.throwsAsync(bad, { message: /chain MISSING does not exist/ });
  await t.notThrowsAsync(alsoGood);
  t.deepEqual(kernel.rules, [key(accept(1))]);
});

test("a lone batch whose nat part committed before its filter part failed is not applied twice", async (t) => {
  const kernel = fakeKernel();
  const batcher = new RestoreBatcher(kernel.restore, kernel.save);
  // The filter block appends to a chain that is not there: the nat append commits, the filter block does not.
  const missing: Rule = { table: "filter", chain: "MISSING", spec: "-j ACCEPT" };
  await t.throwsAsync(batcher.submit({ append: [dnat(1), missing] }), { message: /chain MISSING/ });
  t.deepEqual(kernel.rules, [key(dnat(1))], "the nat part stayed, once");
  t.is(kernel.calls.length, 2, "tried, then retried for what was left");
  // Undoing it deletes what is there and skips what is not.
  await batcher.submit({ delete: [dnat(1), accept(1)] });
  t.deepEqual(kernel.rules, []);
});

test("deleting rules that are already gone succeeds, and touches nothing else", async (t) => {
  const kernel = fakeKernel();
  const batcher = new RestoreBatcher(kernel.restore, kernel.save);
  await batcher.submit({ append: [accept(1)] });
  await t.notThrowsAsync(batcher.submit({ delete: [dnat(3), accept(3)] }));
  t.deepEqual(kernel.rules, [key(accept(1))]);
});

test("what is left of a batch: missing additions, present deletions; a flushed chain is rewritten whole", (t) => {
  const saved = parseIptablesSave(["*nat", ":RIKLET - [0:0]", `-A ${dnat(1).chain} ${dnat(1).spec}`, "COMMIT", "*filter", `-A ${accept(1).chain} ${accept(1).spec}`, "COMMIT"].join("\n"));
  const jump: Rule = { table: "nat", chain: "RIKLET", spec: "-j RIKLET-P15" };
  t.deepEqual(
    remainingOf(
      {
        createChains: [{ table: "nat", name: "RIKLET" }, { table: "nat", name: "RIKLET-P1" }],
        flushChains: [{ table: "nat", name: "RIKLET" }],
        delete: [accept(1), accept(2)],
        append: [dnat(1), dnat(2), jump],
        deleteChains: [{ table: "filter", name: "GONE" }],
      },
      saved,
    ),
    {
      createChains: [{ table: "nat", name: "RIKLET-P1" }],
      flushChains: [{ table: "nat", name: "RIKLET" }],
      delete: [accept(1)],
      insert: [],
      append: [dnat(2), jump],
      deleteChains: [],
    },
  );
});

test("an empty batch (an instance that exposes nothing) runs no iptables-restore", async (t) => {
  const kernel = fakeKernel();
  const batcher = new RestoreBatcher(kernel.restore, kernel.save);
  await batcher.submit({ append: [], delete: [] });
  await batcher.submit({});
  t.deepEqual(kernel.calls, []);
  await batcher.submit({ append: [dnat(1)] });
  t.is(kernel.calls.length, 1);
});
