import test from "ava";
import { parseBenchArgs, OptionsError } from "./options.js";
import {
  evaluateTargets,
  figuresOf,
  overlappedSteps,
  profileRows,
  renderFigures,
  renderTable,
  sumOfSteps,
  type SizeMeasurements,
} from "./report.js";

const rik = (createMs: number[]) => ({
  createMs,
  destroyMs: createMs,
  concurrentCreateMs: 400,
  concurrentDestroyMs: 600,
  restartReadyMs: 1500,
  reconcileMs: 300,
  recovered: 0,
  rssKb: 100 * 1024,
  listMs: [1],
  getMs: [1],
});
const baseline = (createMs: number[]) => ({
  createMs,
  destroyMs: createMs,
  concurrentCreate: { ms: 4000, capped: false },
  concurrentDestroy: { ms: 3000, capped: true },
});

test("figures carry ratio rik/baseline and speed-up baseline/rik", (t) => {
  const measurements: SizeMeasurements[] = [{ size: 0, rik: rik([2, 4]), baseline: baseline([20, 40]) }];
  const figures = figuresOf(measurements, 100);
  const create = figures.find((f) => f.key === "create_p50")!;
  t.deepEqual([create.rik, create.baseline, create.ratio, create.speedup], [2, 20, 0.1, 10]);
  t.is(figures.find((f) => f.key === "rss")!.rik, 100);
  t.is(figures.find((f) => f.key === "restart_ready")!.baseline, null);
  t.is(figures.find((f) => f.key === "concurrent_create_wall")!.baselineCapped, undefined);
  t.is(figures.find((f) => f.key === "concurrent_destroy_wall")!.baselineCapped, true);
  t.regex(renderFigures(figures), /100 concurrent destroys, wall\s+0\s+600 ms\s+>3000 ms\s+<0\.200\s+>5x/);
});

test("targets pass, fail, and say when 5000 was not measured", (t) => {
  const measurements: SizeMeasurements[] = [
    { size: 0, rik: rik([4]), baseline: baseline([20]) },
    { size: 500, rik: rik([12]), baseline: baseline([240]) },
  ];
  const targets = evaluateTargets({ figures: figuresOf(measurements, 100), sizes: [0, 500], concurrent: 100, defaultPoolCapacity: 16384 });
  const byLabel = new Map(targets.map((t) => [t.label, t]));
  t.is(byLabel.get("create p50 @0")!.pass, true);
  t.is(byLabel.get("create p50 @500")!.pass, false);
  t.regex(byLabel.get("create p50 @500")!.note!, /5000 not measured/);
  t.is(byLabel.get("create p50 speed-up vs baseline @0")!.pass, false); // 5x < 6x
  t.is(byLabel.get("create p50 speed-up vs baseline @500")!.pass, true); // 20x
  t.is(byLabel.get("100 concurrent creates @0")!.pass, true);
  t.is(byLabel.get("100 concurrent destroys @0")!.pass, false);
  t.is(byLabel.get("restart + reconcile @500")!.pass, true);
  t.is(byLabel.get("default pool capacity")!.pass, true);
});

test("renderTable aligns columns", (t) => {
  t.is(renderTable(["a", "b"], [["xx", "1"], ["y", "22"]]), "a    b\n--  --\nxx   1\ny   22");
});

test("options: defaults, --quick, and refusals", (t) => {
  const full = parseBenchArgs([]);
  t.deepEqual(full.sizes, [0, 1000, 5000]);
  t.is(full.samples, 100);
  t.is(full.backend, "nft");
  t.is(full.out, "bench-results.json");
  const quick = parseBenchArgs(["--quick", "--backend", "legacy", "--out", "x.json"]);
  t.deepEqual(quick.sizes, [0, 500]);
  t.is(quick.samples, 30);
  t.is(quick.backend, "legacy");
  t.deepEqual(parseBenchArgs(["--sizes", "5000,0"]).sizes, [0, 5000]);
  t.throws(() => parseBenchArgs(["--backend", "ipfw"]), { instanceOf: OptionsError });
  t.throws(() => parseBenchArgs(["--sizes", "0,0"]), { instanceOf: OptionsError });
  t.throws(() => parseBenchArgs(["--pool", "10.0.0.0/24", "--sizes", "100"]), { instanceOf: OptionsError });
  t.throws(() => parseBenchArgs(["--bogus"]), { instanceOf: OptionsError });
});

test("profile summary: sequential sum and the overlapped critical path", (t) => {
  const rows = profileRows([
    {
      size: 0,
      steps: {
        "create: state record (write)": [1],
        "create: TAP ioctl": [2],
        "create: rtnetlink link up": [1],
        "create: iptables-restore append the DNAT": [5],
        "destroy: iptables-restore delete the DNAT": [30],
        "destroy: rtnetlink link del": [20],
      },
    },
  ]);
  t.is(sumOfSteps(rows, "create:", 0), 9);
  t.is(overlappedSteps(rows, "create:", 0), 6);
  t.is(overlappedSteps(rows, "destroy:", 0), 30);
});
