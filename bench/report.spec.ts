import test from "ava";
import {
  evaluateTargets,
  figuresOf,
  overlappedSteps,
  profileRows,
  renderFigures,
  renderTable,
  renderTargets,
  sumOfSteps,
  type RikMeasurements,
  type SizeMeasurements,
} from "./report.js";

const rik = (createMs: number[], extra: Partial<RikMeasurements> = {}): RikMeasurements => ({
  createMs,
  destroyMs: createMs,
  concurrentCreateMs: 200,
  concurrentDestroyMs: 300,
  restartReadyMs: 900,
  reconcileMs: 300,
  recovered: 0,
  rssKb: 100 * 1024,
  listMs: [1],
  getMs: [1],
  ...extra,
});
const baseline = (createMs: number[]) => ({
  createMs,
  destroyMs: createMs,
  concurrentCreate: { ms: 4000, capped: false },
  concurrentDestroy: { ms: 3000, capped: true },
});
const churn = (cycles: number, failures = 0, kernelDifferences = 0) => ({
  elapsedMs: 60_000,
  cycles,
  slowestSecond: 100,
  createMs: [2],
  destroyMs: [1],
  failures,
  leftInList: 0,
  kernelDifferences,
  kernelExactAfterMs: kernelDifferences === 0 ? 30 : undefined,
  cpu: { servicePercent: 80, benchPercent: 30, machinePercent: 95 },
});
const datapath = (aloneMs: number[], besideMs: number[]) => ({ aloneMs, besideMs, exposed: 5001, failures: 0 });
const figureOptions = { concurrent: 100, churnSeconds: 60, churnInFlight: 8 };

test("figures have a column per backend, riklet's, and each backend's speed-up over riklet", (t) => {
  const measurements: SizeMeasurements[] = [{ size: 0, rik: { nft: rik([2, 4]), iptables: rik([4, 8]) }, baseline: baseline([20, 40]) }];
  const figures = figuresOf(measurements, ["nft", "iptables"], figureOptions);
  const create = figures.find((f) => f.key === "create_p50")!;
  t.deepEqual(create.values, { nft: 2, iptables: 4, baseline: 20 });
  t.deepEqual(create.speedups, { nft: 10, iptables: 5 });
  t.deepEqual(figures.find((f) => f.key === "rss")!.values, { nft: 100, iptables: 100 });
  t.deepEqual(figures.find((f) => f.key === "restart_ready")!.speedups, {});
  t.is(figures.find((f) => f.key === "concurrent_create_wall")!.baselineCapped, undefined);
  t.is(figures.find((f) => f.key === "concurrent_destroy_wall")!.baselineCapped, true);
  t.false(figures.some((f) => f.key.startsWith("churn") || f.key.startsWith("datapath")));
  const table = renderFigures(figures, ["nft", "iptables"]);
  t.regex(table, /^figure\s+instances\s+nft\s+iptables\s+riklet\s+nft speed-up\s+iptables speed-up$/m);
  t.regex(table, /100 concurrent destroys, wall\s+0\s+300 ms\s+300 ms\s+>3000 ms\s+>10x\s+>10x/);
});

test("churn and data-path figures appear when measured, with the data path's ratio", (t) => {
  const measurements: SizeMeasurements[] = [
    { size: 5000, rik: { nft: rik([2], { churn: churn(9000), datapath: datapath([1, 1, 1], [1.05, 1.05, 1.05]) }), iptables: rik([3]) } },
  ];
  const figures = figuresOf(measurements, ["nft", "iptables"], figureOptions);
  const value = (key: string) => figures.find((f) => f.key === key)!.values;
  t.deepEqual(value("churn_rate"), { nft: 150, iptables: null });
  t.deepEqual(value("churn_service_cpu"), { nft: 80, iptables: null });
  t.deepEqual(value("datapath_ratio"), { nft: 1.05, iptables: null });
  t.regex(figures.find((f) => f.key === "datapath_p50")!.label, /5001 exposed/);
  t.regex(renderFigures(figures, ["nft", "iptables"]), /cycles per second\s+5000\s+150\/s\s+-/);
});

test("targets: judged on the first backend, the others beside it, 5000's stand-in noted", (t) => {
  const measurements: SizeMeasurements[] = [
    { size: 0, rik: { nft: rik([2], { churn: churn(9600) }), iptables: rik([4], { churn: churn(6000, 3, 2) }) }, baseline: baseline([20]) },
    {
      size: 500,
      rik: {
        nft: rik([4.5], { churn: churn(9000), datapath: datapath([1], [1.08]) }),
        iptables: rik([6], { concurrentCreateMs: 400, churn: churn(9000), datapath: datapath([1], [1.3]) }),
      },
    },
  ];
  const figures = figuresOf(measurements, ["nft", "iptables"], figureOptions);
  const targets = evaluateTargets({ figures, sizes: [0, 500], firewalls: ["nft", "iptables"], ...figureOptions });
  const byLabel = new Map(targets.map((target) => [target.label, target]));
  const of = (label: string) => {
    const target = byLabel.get(label);
    if (target === undefined) throw new Error(`no target "${label}" in ${[...byLabel.keys()].join(", ")}`);
    return target;
  };
  t.is(of("create p50 @0").pass, true); // 2 <= 3
  t.is(of("create p50 @0").results.iptables!.pass, false); // 4 > 3
  t.is(of("create p50 @500").pass, true); // 4.5 <= 5
  t.regex(of("create p50 @500").note!, /5000 not measured/);
  t.is(of("destroy p50 @500").pass, true);
  t.is(of("100 concurrent creates @500").pass, true);
  t.deepEqual(of("100 concurrent creates @500").results.iptables, { actual: "0.4 s", pass: false });
  t.is(of("100 concurrent destroys @0").pass, false); // 0.3 s > 0.25
  t.is(of("churn cycles per second @0").pass, true); // 160/s
  t.deepEqual(of("churn cycles per second @0").results.iptables, { actual: "100/s", pass: false });
  t.is(of("churn failed calls @0").results.iptables!.pass, false);
  t.is(of("kernel state exact after the churn @0").results.iptables!.actual, "2 differences");
  t.is(of("data path p50 @500 vs 1 exposed").pass, true); // +8%
  t.deepEqual(of("data path p50 @500 vs 1 exposed").results.iptables, { actual: "+30%", pass: false });
  t.is(of("restart to SERVING @500").pass, true);
  t.is(of("service RSS @500").pass, true);
  t.false([...byLabel.keys()].some((label) => /speed-up|pool/.test(label)));
  const table = renderTargets(targets);
  t.regex(table, /^target\s+expected\s+nft\s+result\s+iptables\s+note$/m);
  t.regex(table, /100 concurrent creates @500\s+<= 0\.25 s\s+0\.2 s\s+pass\s+0\.4 s \(misses\)/);
});

test("targets: a churn shorter than the target's says so, and what was not measured is n/a", (t) => {
  const measurements: SizeMeasurements[] = [{ size: 0, rik: { iptables: rik([2]) } }];
  const figures = figuresOf(measurements, ["iptables"], { ...figureOptions, churnSeconds: 10 });
  const targets = evaluateTargets({ figures, sizes: [0], firewalls: ["iptables"], ...figureOptions, churnSeconds: 10 });
  const churnTarget = targets.find((target) => target.label === "churn cycles per second @0")!;
  t.is(churnTarget.pass, null);
  t.is(churnTarget.judged, "iptables");
  t.regex(churnTarget.note!, /ran 10 s, the target is for 60 s/);
  t.is(targets.find((target) => target.label === "data path p50 @0 vs 1 exposed")!.pass, null);
  // Size 0 alone: each latency target once, not again as 5000's stand-in.
  t.is(targets.filter((target) => target.label === "destroy p50 @0").length, 1);
  t.is(targets.filter((target) => target.label === "create p50 @0").length, 1);
});

test("renderTable aligns columns", (t) => {
  t.is(renderTable(["a", "b"], [["xx", "1"], ["y", "22"]]), "a    b\n--  --\nxx   1\ny   22");
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
        "destroy: TAP retired": [20],
      },
    },
  ]);
  t.is(sumOfSteps(rows, "create:", 0), 9);
  t.is(overlappedSteps(rows, "create:", 0), 6);
  t.is(overlappedSteps(rows, "destroy:", 0), 30);
});
