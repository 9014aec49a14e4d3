/**
 * Scrapes a Prometheus endpoint that lives in a test namespace (the service's metrics
 * bind to the node namespace's loopback) with a node one-liner run inside it.
 */
import { execIn } from "./netns.js";

export type HttpAnswer = { readonly status: number; readonly body: string } | { readonly error: string };

// argv: [node, url]. Prints one JSON line: the status and body, or the connection error's code.
const FETCH_SCRIPT = `
fetch(process.argv[1], { signal: AbortSignal.timeout(5000) }).then(
  async (response) => process.stdout.write(JSON.stringify({ status: response.status, body: await response.text() })),
  (error) => process.stdout.write(JSON.stringify({ error: String(error.cause?.code ?? error.name) })),
);
`;

/** GET `url` from inside `ns`. */
export async function httpGetIn(ns: string, url: string): Promise<HttpAnswer> {
  const { stdout } = await execIn(ns, process.execPath, ["-e", FETCH_SCRIPT, url]);
  return JSON.parse(String(stdout)) as HttpAnswer;
}

/** Samples keyed `name{label="value",...}`, labels sorted by name (`name` alone without labels). */
export type Samples = ReadonlyMap<string, number>;

/** Parses the Prometheus text format's sample lines. */
export function parseSamples(text: string): Samples {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) continue;
    const [, name, labels, value] = match as unknown as [string, string, string | undefined, string];
    const sorted = [...(labels ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)]
      .map(([, key, labelValue]) => `${key}="${labelValue}"`)
      .sort();
    samples.set(sorted.length === 0 ? name : `${name}{${sorted.join(",")}}`, Number(value));
  }
  return samples;
}

/** GET http://127.0.0.1:9464/metrics (or `url`) inside `ns` and parse it; throws unless it answers 200. */
export async function scrapeMetrics(ns: string, url = "http://127.0.0.1:9464/metrics"): Promise<Samples> {
  const answer = await httpGetIn(ns, url);
  if (!("status" in answer) || answer.status !== 200) throw new Error(`scraping ${url} in ${ns}: ${JSON.stringify(answer)}`);
  return parseSamples(answer.body);
}
