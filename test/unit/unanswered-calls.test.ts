import { describe, expect, it } from 'vitest';
import { BACKLOG_READ_MS, pickRepeat, REPEAT_WINDOW_MS, type UnansweredCall } from '../../src/frontends/legacy/unanswered-calls.js';

const NOW = 1_000_000;
const mount = (name: string, agoMs = 1000): UnansweredCall => ({
  path: '/VolumeDriver.Mount',
  body: JSON.stringify({ Name: name, ID: 'c1' }),
  receivedMs: NOW - agoMs,
});
const unmount: UnansweredCall = { path: '/VolumeDriver.Unmount', body: '{"Name":"u","ID":"c2"}', receivedMs: NOW - 500 };

describe('pickRepeat: which unanswered call an empty repeat stands for', () => {
  const table: { name: string; left: UnansweredCall[]; times?: { startedAgoMs: number; servingAgoMs: number }; found: string | undefined; why?: RegExp }[] = [
    { name: 'one Mount left: that one', left: [mount('pg'), unmount], found: mount('pg').body },
    { name: 'none of that kind', left: [unmount], found: undefined, why: /left no VolumeDriver\.Mount call unanswered/ },
    { name: 'nothing left at all', left: [], found: undefined, why: /left no VolumeDriver\.Mount call/ },
    { name: 'two Mounts: ambiguous, neither', left: [mount('pg'), mount('web')], found: undefined, why: /left 2 VolumeDriver\.Mount calls unanswered/ },
    {
      name: 'one recent and one older than dockerd repeats: the recent one',
      left: [mount('pg'), mount('old', REPEAT_WINDOW_MS + 1)],
      found: mount('pg').body,
    },
    { name: 'only an old one: none', left: [mount('old', REPEAT_WINDOW_MS + 1)], found: undefined, why: /more than 35 s before this repeat was sent/ },
    { name: 'at the edge of the window: still that one', left: [mount('pg', REPEAT_WINDOW_MS)], found: mount('pg').body },
    // netvol SIGKILLed 3 s after it received the call; systemd restarted it 6 s later; its start
    // took 35 s more under emulation, while dockerd's repeat waited in the socket's backlog.
    {
      name: 'read from the backlog just after the socket is served: counted from when the process began',
      left: [mount('pg', 45_000)],
      times: { startedAgoMs: 36_000, servingAgoMs: 1000 },
      found: mount('pg').body,
    },
    {
      name: 'from the backlog, but received longer than dockerd repeats before the process began: none',
      left: [mount('old', 45_000)],
      times: { startedAgoMs: 45_000 - REPEAT_WINDOW_MS - 1, servingAgoMs: 1000 },
      found: undefined,
      why: /more than 35 s before this repeat was sent/,
    },
    {
      name: 'read long after the socket is served: a new repeat, counted from now',
      left: [mount('pg', 45_000)],
      times: { startedAgoMs: 36_000, servingAgoMs: BACKLOG_READ_MS + 1 },
      found: undefined,
    },
  ];
  it.each(table)('$name', ({ left, found, why, times }) => {
    const at = times && { startedMs: NOW - times.startedAgoMs, servingSinceMs: NOW - times.servingAgoMs };
    const pick = pickRepeat(left, '/VolumeDriver.Mount', NOW, at);
    if (found === undefined) {
      expect(pick.found).toBe(false);
      if (!pick.found && why) expect(pick.why).toMatch(why);
    } else {
      expect(pick).toEqual({ found: true, body: found });
    }
  });
});
