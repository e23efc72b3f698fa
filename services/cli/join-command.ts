/** The command a new machine runs to join, as `init` and `token create --print-join-command` print it. */
export function joinCommand(server: string, token: string, caCertHash: string): string {
  return `clusteradm join ${server} --token ${token} --ca-cert-hash ${caCertHash}`;
}
