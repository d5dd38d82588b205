package prekeys

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzParseFile feeds arbitrary bytes to the prekey file loader, for the
// golden identity. A failure must be a *FileError and no state; a success
// must encode to a version 2 file that loads again and encodes to the same
// bytes. Seeds: testdata/fuzz/FuzzParseFile and both golden files.
func FuzzParseFile(f *testing.F) {
	f.Add(readFile(f, goldenFile))
	f.Add(readFile(f, goldenFileV1))
	f.Add([]byte(`{"version": 2}`))
	f.Add([]byte(`{"version": 1}`))
	f.Add([]byte(`{"version": 2, "amid": "2CiZ88hVF4JuQim8nnSuyeiV2HF2", "next_prekey_id": 1, "signed_prekey": null}`))
	f.Add([]byte(`null`))

	id := goldenIdentity(f)
	amid, signingKey := id.AMID(), id.SigningPublicKey()
	read := time.Date(2026, 2, 3, 4, 5, 6, 7, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseState(data, amid, signingKey, read)
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *FileError", err, err)
			}
			if st != nil {
				t.Fatal("parseState returned a state with an error")
			}
			return
		}
		enc, err := encodeState(st, amid)
		if err != nil {
			t.Fatalf("a loaded state does not encode: %v", err)
		}
		// The read time stands in only for what a version 1 file lacks:
		// a version 2 file loads the same at any time.
		again, err := parseState(enc, amid, signingKey, read.Add(time.Hour))
		if err != nil {
			t.Fatalf("the encoded state does not load: %v\n%s", err, enc)
		}
		reenc, err := encodeState(again, amid)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(reenc, enc) {
			t.Fatalf("encoding is not stable:\n%s\nthen\n%s", enc, reenc)
		}
	})
}
