package relayserver

import (
	"reflect"
	"strings"
	"testing"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// TestParseSendFast checks that the fast decoder takes the send frames the
// clients write and decodes them as protocol.ParseClientFrame does, and
// leaves every other form to it.
func TestParseSendFast(t *testing.T) {
	to := fixedAgent(2).amid
	for _, mt := range []protocol.MessageType{protocol.MessageTypeMessage, protocol.MessageTypeKnock} {
		f := protocol.Send{To: to, EncryptedPayload: strings.Repeat("QUJD+/==", 100), MessageType: mt}
		b, err := protocol.MarshalFrame(f)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseSendFast(b)
		if !ok || !reflect.DeepEqual(got, f) {
			t.Errorf("%s: parseSendFast(%.80s…) = %#v, %v", mt, b, got, ok)
		}
	}
	for _, s := range []string{
		`{"type":"send","to":"` + string(to) + `","encrypted_payload":"a\"b","message_type":"message"}`,
		`{"type":"send","to":"` + string(to) + `","encrypted_payload":"a\u0041","message_type":"message"}`,
		`{"type":"send","to":"` + string(to) + `","encrypted_payload":"é","message_type":"message"}`,
		`{"type":"send","to":"` + string(to) + `","encrypted_payload":"x","message_type":"bogus"}`,
		`{"type":"send","to":"nope","encrypted_payload":"x","message_type":"message"}`,
		`{"type":"send","to":"` + string(to) + `","encrypted_payload":"x","message_type":"message","ice_candidates":[]}`,
		`{"type":"send","to":"` + string(to) + `","encrypted_payload":"x","message_type":"message"} `,
		`{"type":"send","to":"` + string(to) + `","encrypted_payload":"x","encrypted_payload":"y","message_type":"message"}`,
	} {
		if got, ok := parseSendFast([]byte(s)); ok {
			t.Errorf("parseSendFast(%s) = %#v, want it left to the full decoder", s, got)
		}
	}
}

// FuzzParseSendFast checks that whatever the fast decoder accepts, the full
// decoder accepts too, as the same send frame.
func FuzzParseSendFast(f *testing.F) {
	to := string(fixedAgent(2).amid)
	f.Add(`{"type":"send","to":"` + to + `","encrypted_payload":"QUJD","message_type":"message"}`)
	f.Add(`{"type":"send","to":"` + to + `","encrypted_payload":"","message_type":"knock"}`)
	f.Add(`{"type":"send","to":"` + to + `","encrypted_payload":"a","message_type":"message","x":"y"}`)
	f.Fuzz(func(t *testing.T, s string) {
		fast, ok := parseSendFast([]byte(s))
		if !ok {
			return
		}
		full, err := protocol.ParseClientFrame([]byte(s))
		if err != nil {
			t.Fatalf("fast decoder accepted %q, full decoder refused it: %v", s, err)
		}
		if !reflect.DeepEqual(full, protocol.ClientFrame(fast)) {
			t.Fatalf("%q: fast %#v, full %#v", s, fast, full)
		}
	})
}
