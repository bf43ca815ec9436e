// Package notify tells people and machines what happened on the farm. The
// controller describes each farm event (a build started or ended, a step
// failed or was retried, a worker joined or was lost, an input went
// missing) as an Event; a Dispatcher hands it to every Target that wants
// it: a hook command run with the event on stdin, a webhook POST signed
// with HMAC-SHA256, or an e-mail.
//
// Delivery is at least once and never holds up scheduling. The controller
// writes each event's Deliveries in the same bbolt transaction as the
// build events they describe (Persist), so a delivery is pending exactly
// when its event is durable; the Dispatcher runs them on a bounded number
// of goroutines, retries failures with backoff until Config.RetryFor has
// passed since the event, and deletes each from the database once it has
// succeeded or been given up on. After a restart, Open hands the pending
// ones out again, so a receiver may see an event twice (Event.ID tells
// repeats apart) but never misses one the controller recorded.
package notify
