package staging

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

// FuzzStreamFrames: any bytes from the other side are read as frames and
// bodies without a panic or an allocation beyond the frame bound, and what
// decodes encodes back to the same bytes.
func FuzzStreamFrames(f *testing.F) {
	f.Add(appendFrame(nil, frame{id: 1, kind: kindRequest, payload: encodeRequest(request{op: opPut, key: "a/b", data: []byte("x")})}))
	f.Add(appendFrame(nil, frame{id: 7, kind: kindResponse, flags: flagMore, payload: encodeResponse(opList, response{infos: []ObjectInfo{{Key: "k", Size: 3, ETag: "e", Modified: time.Unix(5, 0)}}})}))
	f.Add(appendFrame(nil, frame{kind: kindHello, payload: encodeHello("/store")}))
	f.Add([]byte{0, 0, 0, 6, 0, 0, 0, 1, 9, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 2, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			fr, err := readFrame(r)
			if err != nil {
				return
			}
			if len(fr.payload) > maxFramePayload {
				t.Fatalf("payload of %d bytes", len(fr.payload))
			}
			if q, err := decodeRequest(fr.payload); err == nil && q.op >= opGet && q.op <= opLast {
				if got := encodeRequest(q); !bytes.Equal(got, fr.payload) {
					t.Fatalf("request %+v re-encodes as %x, was %x", q, got, fr.payload)
				}
			}
			for op := opGet; op <= opLast; op++ {
				if p, err := decodeResponse(op, fr.payload); err == nil {
					if got := encodeResponse(op, p); !bytes.Equal(got, fr.payload) && p.code == respOK && op != opStat && op != opList {
						// Stat and List hold times, which re-encode
						// canonically; the others byte for byte.
						t.Fatalf("%s response %+v re-encodes as %x, was %x", op, p, got, fr.payload)
					}
				}
			}
			_, _, _ = decodeHello(fr.payload)
		}
	})
}

// FuzzStreamServer: a server fed any stream after the opening neither
// panics nor hangs; it ends when the stream does.
func FuzzStreamServer(f *testing.F) {
	var seed []byte
	seed = appendFrame(seed, frame{id: 1, kind: kindRequest, payload: encodeRequest(request{op: opPut, key: "a/b", data: []byte("x")})})
	seed = appendFrame(seed, frame{id: 2, kind: kindRequest, payload: encodeRequest(request{op: opGet, key: "a/b"})})
	seed = appendFrame(seed, frame{id: 3, kind: kindRequest, flags: flagMore, payload: encodeRequest(request{op: opPutFile, key: "f"})})
	seed = appendFrame(seed, frame{id: 3, kind: kindData, payload: []byte("file")})
	seed = appendFrame(seed, frame{id: 4, kind: kindRequest, payload: encodeRequest(request{op: opGetFile, key: "f"})})
	seed = appendFrame(seed, frame{id: 5, kind: kindRequest, payload: encodeRequest(request{op: opList, key: ""})})
	seed = appendFrame(seed, frame{id: 6, kind: kindCancel})
	seed = appendFrame(seed, frame{kind: kindNotify, payload: []byte("hi")})
	f.Add(seed)
	f.Add([]byte{0, 0, 0, 7, 0, 0, 0, 1, 2, 1, 99})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		store, err := OpenFS(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		in := io.MultiReader(bytes.NewReader(append([]byte{}, append(streamMagic, streamVersion)...)), bytes.NewReader(data))
		srv := NewStreamServer(store, StreamOptions{OnNotify: func([]byte) {}}, dir, nil)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.Serve(context.Background(), in, io.Discard, nil)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("server still running after its input ended")
		}
	})
}
