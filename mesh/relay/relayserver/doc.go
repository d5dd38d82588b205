// Package relayserver is the AgentMesh relay (PROTOCOL.md §5): a WebSocket
// server that authenticates agents by their Ed25519 keys, routes opaque
// end-to-end encrypted payloads between them, stores messages for agents
// that are offline, and forwards WebRTC signalling.
//
// Open a Store, create a Server with New and serve it as an http.Handler:
//
//	store, err := relayserver.OpenStore(ctx, "sqlite:///var/lib/agentmesh/relay.db")
//	srv, err := relayserver.New(relayserver.Config{Store: store, Logger: log})
//	http.Serve(ln, srv)
//	…
//	srv.Close()
//	store.Close()
//
// The WebSocket is served on every path (clients use /v1/connect) except
// GET /healthz, which answers {"status":"ok"}, and GET /readyz, which also
// checks the store.
//
// # Compatibility
//
// Frames on the wire are those of the original relay, so the TypeScript and
// Python clients work unchanged. Where the original is unsafe, this relay
// behaves in the compatible way PROTOCOL.md §13 proposes:
//
//   - A refused CONNECT gets its error frame before the socket closes (status
//     1008): INVALID_MESSAGE for a first frame that is not a CONNECT or that
//     does not arrive within Config.AuthTimeout, protocol_upgrade_required for
//     agentmesh/0.1, PROTOCOL_MISMATCH for any other protocol but agentmesh/0.2,
//     timestamp_expired for a timestamp more than 5 minutes old or 1 minute
//     ahead, amid_mismatch for an AMID that is not derived from the public key,
//     and INVALID_SIGNATURE for a bad key or signature. The signature is
//     checked over the timestamp as sent and, failing that, over its Rust
//     rendering (protocol.VerifyTimestamp).
//   - A CONNECT signature is accepted once: it is remembered, in memory, until
//     its timestamp is too old to be accepted anyway, and a second use is
//     refused with INVALID_SIGNATURE (W-1).
//   - Each connection has its own id. A second connection for an AMID replaces
//     the first, which is closed with StatusReplaced; the first's teardown
//     never unregisters the second. A client that does not answer a WebSocket
//     ping within Config.PingTimeout is unregistered and its socket closed
//     (W-20).
//   - encrypted_payload is limited to Config.MaxMessageSize (64 KiB):
//     larger payloads get MESSAGE_TOO_LARGE and the connection stays open; a
//     frame too large even for that closes the socket with status 1009.
//   - Every frame kind has a per-minute budget (Limits), counted per AMID so
//     that reconnecting does not reset it; a frame over budget gets
//     RATE_LIMITED with retry_after_seconds (W-21).
//   - A frame that does not decode gets INVALID_MESSAGE naming the problem,
//     where the original ignored it silently; the connection stays open.
//
// # Store and forward
//
// A message for an agent that is not connected is written to the Store (an
// SQLite database, synced before the relay moves on) and kept for
// Config.QueueTTL. A recipient holds at most Config.MaxQueuedPerRecipient
// messages, of which one sender may hold Config.MaxQueuedPerSenderPerRecipient;
// when either is full the sender gets RECIPIENT_OFFLINE ("Agent <to> is
// offline and message queue is full"), and nothing already stored is evicted.
//
// When the recipient connects, connected reports how many messages are
// stored and the relay pushes them, oldest first, as receive frames carrying
// their original timestamp and a message_id. A stored message is deleted
// only when the recipient acknowledges it ({"type":"ack","message_id":…});
// a nack, or no answer, leaves it stored, and it is pushed again on the next
// connection (never twice on the same one). get_pending_messages answers
// with the stored messages not yet acknowledged (PROTOCOL.md §5.7). Expired
// messages are never delivered and are deleted every Config.PurgeInterval.
//
// Each connection has a queue of Config.OutboundQueue frames drained by a
// writer of its own (a goroutine that runs only while there is something to
// write), so a client that stops reading slows no one else. A message that
// finds its recipient's queue full goes to the store instead of being
// dropped, as do messages still queued when a connection ends; the writer
// pushes stored messages whenever its queue has drained. Once a message for
// a connected recipient has gone to the store, the later ones follow it
// there until the writer has pushed the stored backlog, so a recipient gets
// each sender's messages in the order they were sent; a new connection
// likewise gets its stored messages before any live one, including a
// message stored for it as for an offline recipient while it connected.
//
// # Shutdown
//
// Server.Close stops taking connections and sends each client a close
// frame (1001), then keeps reading and handling what the client sent before
// it saw that frame, until the client's close arrives, or a second passes
// without a frame (ten seconds at most); sends among those frames are
// stored. So every frame a client wrote before it read the relay's close
// is handled, provided the client keeps reading (as the WebSocket close
// handshake requires) and its frames keep coming within those bounds.
// Independently of shutdown, a client that sends a ping frame
// ({"type":"ping"}) and gets its pong knows that the relay handled every
// frame it sent before the ping: frames are handled in order, stores are
// synced before the next frame is read.
//
// # Presence
//
// presence sets an agent's status; presence_query answers with the status
// and last activity of a connected agent only when the asker has a reason to
// see them: it asks about itself, or the two agents exchanged at least one
// message (a send, in either direction, delivered or stored) through this
// relay within Config.PresenceWindow (24 h). Any other query is answered
// "offline" without last_seen, the same answer as for an agent that is not
// connected, so presence reveals nothing to strangers (W-22). The relation
// is kept in memory and forgotten on restart.
package relayserver
