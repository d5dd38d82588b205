// Package skills installs, supervises and calls the skills of a host: the
// out-of-process plugins that answer REQUESTs (DESIGN.md §5).
//
// A [Manager] owns the skills directory of one AgentMesh home
// (~/.agentmesh/skills) and everything in it. Build one with [New] and close
// it with [Manager.Close]; between the two it
//
//   - installs skills from a directory or a .tar.gz archive
//     ([Manager.Install]), upgrades, enables, disables and removes them, and
//     records each in skills.lock with the SHA-256 of its binary;
//   - starts a skill's plugin process on first use and keeps it warm,
//     health-checks it, restarts it with backoff after a crash, and
//     quarantines it after repeated crashes;
//   - dispatches a REQUEST to the skill that declares its intent
//     ([Manager.Dispatch]), validating the parameters before the skill sees
//     them and the results after;
//   - offers host services to the skills whose manifest asks for them.
//
// # On disk
//
//	<home>/skills/                  0700, owned by the host user
//	<home>/skills/skills.lock       0600, JSON, replaced atomically
//	<home>/skills/<name>/<version>/ 0700: skill.json and schemas/ (0600),
//	                                the binary (0700)
//
// The Manager refuses a skills directory that group or others can write or
// that another user owns, and it never follows a symbolic link inside it: a
// hash check alone does not stop a planted link or a writable directory
// from swapping the binary (Vault CVE-2025-6000). Before every start of a
// plugin the binary is hashed and compared with the lock, and go-plugin's
// SecureConfig checks it again as it execs.
//
// # Plugins
//
// Plugins speak the contract of package skillrpc: gRPC only, AutoMTLS, a
// magic cookie, and an environment scrubbed down to skillrpc's allowlist.
// They are managed go-plugin clients: [Manager.Close] stops them, and a
// host's main should also defer plugin.CleanupClients, which kills any that
// outlive their Manager. A plugin whose host dies without cleaning up
// (SIGKILL) exits by itself, which the SDK arranges.
//
// A Manager is safe for concurrent use. One Manager should own a home at a
// time; changes another process makes to skills.lock are picked up by
// [Manager.Reload], which [Manager.Dispatch] runs when the file has changed.
package skills
