import { describe, expect, it } from 'vitest';
import { pickRepeat, REPEAT_WINDOW_MS, type UnansweredCall } from '../../src/frontends/legacy/unanswered-calls.js';

const NOW = 1_000_000;
const mount = (name: string, agoMs = 1000): UnansweredCall => ({
  path: '/VolumeDriver.Mount',
  body: JSON.stringify({ Name: name, ID: 'c1' }),
  receivedMs: NOW - agoMs,
});
const unmount: UnansweredCall = { path: '/VolumeDriver.Unmount', body: '{"Name":"u","ID":"c2"}', receivedMs: NOW - 500 };

describe('pickRepeat: which unanswered call an empty repeat stands for', () => {
  const table: { name: string; left: UnansweredCall[]; found: string | undefined; why?: RegExp }[] = [
    { name: 'one Mount left: that one', left: [mount('pg'), unmount], found: mount('pg').body },
    { name: 'none of that kind', left: [unmount], found: undefined, why: /left no VolumeDriver\.Mount call unanswered/ },
    { name: 'nothing left at all', left: [], found: undefined, why: /left no VolumeDriver\.Mount call/ },
    { name: 'two Mounts: ambiguous, neither', left: [mount('pg'), mount('web')], found: undefined, why: /left 2 VolumeDriver\.Mount calls unanswered/ },
    {
      name: 'one recent and one older than dockerd repeats: the recent one',
      left: [mount('pg'), mount('old', REPEAT_WINDOW_MS + 1)],
      found: mount('pg').body,
    },
    { name: 'only an old one: none', left: [mount('old', REPEAT_WINDOW_MS + 1)], found: undefined, why: /more than 35 s ago/ },
    { name: 'at the edge of the window: still that one', left: [mount('pg', REPEAT_WINDOW_MS)], found: mount('pg').body },
  ];
  it.each(table)('$name', ({ left, found, why }) => {
    const pick = pickRepeat(left, '/VolumeDriver.Mount', NOW);
    if (found === undefined) {
      expect(pick.found).toBe(false);
      if (!pick.found && why) expect(pick.why).toMatch(why);
    } else {
      expect(pick).toEqual({ found: true, body: found });
    }
  });
});
