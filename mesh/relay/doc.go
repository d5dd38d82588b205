// Package relay is the agent side of the AgentMesh relay (PROTOCOL.md §5):
// it dials the relay's WebSocket, authenticates with the agent's Ed25519
// key, sends and receives typed frames, and reconnects by itself when the
// socket drops.
//
// # Connecting
//
// Dial makes one connection attempt and returns once the relay has answered
// CONNECT with connected, or with an error frame, which Dial returns as an
// *Error carrying the relay's code. Every CONNECT of a Conn signs a
// timestamp strictly newer than the one before, because the relay refuses
// a signature it has already seen.
//
// # Receiving
//
// Receive returns the next Incoming event: a *Message (a receive frame), an
// *ICEOffer, an *ICEAnswer, a *P2PEstablished, or an *ErrorEvent for an
// error frame the relay sent about an earlier frame (RATE_LIMITED,
// RECIPIENT_OFFLINE, MESSAGE_TOO_LARGE, …). Consume it with a type switch.
// A goroutine owned by the Conn reads the socket all the time, so that
// WebSocket pings are answered while the application is busy; it queues up
// to WithReceiveBuffer events and then stops reading until Receive makes
// room.
//
// # Stored messages
//
// A message the relay stored for an offline recipient carries a MessageID.
// The Conn acknowledges it (protocol.Ack) when Receive returns it to the
// application, and the relay deletes it then. Delivery is at least once on
// the wire: a message whose acknowledgement was lost is pushed again on the
// next connection. The Conn remembers the last WithDedupWindow message ids
// and drops repeats (acknowledging them again), so within a Conn's life the
// application sees each stored message once. Messages delivered live carry
// no MessageID and are not acknowledged.
//
// # Reconnecting
//
// When the socket drops for any reason other than Close, the Conn dials
// again after an exponential backoff with full jitter (WithBackoff),
// authenticating with a fresh timestamp, and reports each step through
// WithStateFunc. Calls that need the socket (Send, SetPresence, Ping, …)
// made meanwhile wait, bounded by their context, until the Conn is
// connected again. An error frame in answer to a reconnect's CONNECT, other
// than RATE_LIMITED or INTERNAL_ERROR, ends the Conn: it stops dialling,
// and every call, Receive included once the queued events are drained,
// returns that *Error. So does a close with CloseStatusReplaced, which
// means the same agent connected again elsewhere (ErrReplaced): two
// instances reconnecting would only replace each other in turn. After a
// reconnect the relay pushes the messages it stored meanwhile, and
// delivery resumes.
//
// The relay confirms no send: Send returns once the frame is written to the
// socket, and a frame written just before the socket dropped, or just
// before the relay shut down, can be lost. A Ping round trip after sends
// shows that the relay has handled them, since it handles each
// connection's frames in order.
//
// A Conn is safe for concurrent use by multiple goroutines.
package relay
