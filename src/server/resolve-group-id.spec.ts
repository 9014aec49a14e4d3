import test from "ava";
import { resolveGroupId } from "./resolve-group-id.js";

test("resolves a group name through NSS, and takes a numeric id as it is", async (t) => {
  t.is(await resolveGroupId("root"), 0);
  t.is(await resolveGroupId("4242"), 4242);
});

test("an unknown group is an error that says how to fix it", async (t) => {
  await t.throwsAsync(resolveGroupId("rik-no-such-group"), {
    message: 'group "rik-no-such-group" does not exist; create it (groupadd rik-no-such-group) or fix --socket-group',
  });
});
