/**
 * The EC2 instance metadata service (IMDSv2: token, then region), asked with a short
 * timeout: off EC2 it does not answer and start-up must not hang on it.
 */
export const IMDS_ENDPOINT = 'http://169.254.169.254';

export async function regionFromInstanceMetadata(endpoint = IMDS_ENDPOINT, timeoutMs = 1500): Promise<string | undefined> {
  try {
    const token = await fetch(`${endpoint}/latest/api/token`, {
      method: 'PUT',
      headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' },
      signal: AbortSignal.timeout(timeoutMs),
    });
    const headers: Record<string, string> = token.ok ? { 'X-aws-ec2-metadata-token': await token.text() } : {};
    const reply = await fetch(`${endpoint}/latest/meta-data/placement/region`, {
      headers,
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!reply.ok) return undefined;
    const region = (await reply.text()).trim();
    return /^[a-z]{2}(-[a-z]+)+-\d+$/.test(region) ? region : undefined;
  } catch {
    return undefined;
  }
}
