/**
 * Parser for /proc/self/mountinfo (proc(5)):
 *   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
 * Optional fields run up to the lone "-". Paths escape space, tab, newline and backslash
 * as octal (\040, \011, \012, \134), which must be decoded before comparing paths exactly.
 */
export interface MountInfoEntry {
  readonly mountId: number;
  readonly parentId: number;
  readonly root: string;
  readonly mountPoint: string;
  readonly mountOptions: string;
  readonly fsType: string;
  readonly source: string;
  readonly superOptions: string;
}

export function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export function parseMountInfoLine(line: string): MountInfoEntry | undefined {
  const fields = line.trim().split(' ');
  const separator = fields.indexOf('-', 6);
  if (fields.length < 10 || separator < 0 || fields.length < separator + 3) return undefined;
  const [mountId, parentId, , root, mountPoint, mountOptions] = fields;
  return {
    mountId: Number(mountId),
    parentId: Number(parentId),
    root: unescapeMountPath(root ?? ''),
    mountPoint: unescapeMountPath(mountPoint ?? ''),
    mountOptions: mountOptions ?? '',
    fsType: fields[separator + 1] ?? '',
    source: unescapeMountPath(fields[separator + 2] ?? ''),
    superOptions: fields[separator + 3] ?? '',
  };
}

export function parseMountInfo(text: string): MountInfoEntry[] {
  const entries: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const entry = parseMountInfoLine(line);
    if (entry) entries.push(entry);
  }
  return entries;
}
