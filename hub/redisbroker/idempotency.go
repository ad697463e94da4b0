package redisbroker

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pushhub/caddy-pushhub/hub"
)

// Idempotency keys live in Redis, so that a retry that reaches another
// node is recognised too.

// wireReceipt is a settled push's receipt as Redis keeps it.
type wireReceipt struct {
	Delivered int  `json:"d"`
	Dropped   int  `json:"x"`
	Stored    bool `json:"s"`
	Acked     int  `json:"a"`
	Unreached int  `json:"u"`
}

// claimPoll is how often a repeat looks whether the first push settled.
const claimPoll = 20 * time.Millisecond

// Claim makes this push the first of key, or returns the first one's
// receipt, waiting while it is under way.
func (b *Broker) Claim(ctx context.Context, key string, window time.Duration) (hub.Receipt, bool, error) {
	stale := (b.cfg.ReplyTimeout + 10*time.Second).Milliseconds()
	for {
		v, err := b.run(ctx, scriptClaim, key, window.Milliseconds(), stale)
		if err != nil {
			return hub.Receipt{}, false, err
		}
		s, _ := v.(string)
		switch {
		case s == "first":
			return hub.Receipt{}, true, nil
		case strings.HasPrefix(s, "r:"):
			var w wireReceipt
			if err := json.Unmarshal([]byte(s[2:]), &w); err != nil {
				return hub.Receipt{}, false, errBadReply
			}
			return hub.Receipt{Delivered: w.Delivered, Dropped: w.Dropped, Stored: w.Stored, Acked: w.Acked, Unreached: w.Unreached}, false, nil
		}
		select { // under way on some node
		case <-time.After(claimPoll):
		case <-ctx.Done():
			return hub.Receipt{}, false, ctx.Err()
		case <-b.stop:
			return hub.Receipt{}, false, errClosed
		}
	}
}

// Settle records the receipt of the push that claimed key, keeping the
// key's window.
func (b *Broker) Settle(key string, r hub.Receipt, err error) {
	v := "f"
	if err == nil {
		j, _ := json.Marshal(wireReceipt{r.Delivered, r.Dropped, r.Stored, r.Acked, r.Unreached})
		v = "r:" + string(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if e := b.rdb.SetArgs(ctx, b.p+"idem:"+key, v, redis.SetArgs{Mode: "XX", KeepTTL: true}).Err(); e != nil && e != redis.Nil {
		b.failed(e)
	}
}

var errClosed = &hub.Error{Code: "cluster_closed", Message: "the cluster broker has stopped"}
