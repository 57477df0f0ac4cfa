/** A RabbitMQ consumer for tests, on the real broker at 127.0.0.1:5672 (TEST_AMQP_URL overrides). */
import * as amqp from "amqplib"
import { Effect } from "effect"

export const brokerUrl = process.env.TEST_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672"
const parsed = new URL(brokerUrl)
/** The broker's host and port, for a TcpProxy in front of it. */
export const brokerHost = parsed.hostname
export const brokerPort = Number(parsed.port || 5672)
/** The same broker (credentials, vhost) reached through a local proxy on `port`. */
export const brokerUrlVia = (port: number) => {
  const via = new URL(brokerUrl)
  via.hostname = "127.0.0.1"
  via.port = String(port)
  return via.toString()
}
/** The broker's URL with the password replaced: a refused login. */
export const brokerUrlWithPassword = (password: string) => {
  const wrong = new URL(brokerUrl)
  wrong.password = password
  return wrong.toString()
}

/** A consumer of `bindings` on `exchange`, collecting bodies by message id (and counting every delivery). */
export const consumer = (exchange: string, bindings: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const connection = await amqp.connect(brokerUrl)
      const channel = await connection.createChannel()
      await channel.assertExchange(exchange, "topic", { durable: true })
      const { queue } = await channel.assertQueue("", { exclusive: true })
      for (const binding of bindings) await channel.bindQueue(queue, exchange, binding)
      const received = { byId: new Map<string, any>(), deliveries: 0, keys: new Set<string>() }
      await channel.consume(queue, (message) => {
        if (message === null) return
        received.deliveries++
        received.keys.add(message.fields.routingKey)
        received.byId.set(String(message.properties.messageId), JSON.parse(message.content.toString()))
        channel.ack(message)
      })
      return { connection, received }
    }),
    ({ connection }) => Effect.promise(() => connection.close().catch(() => undefined))
  )

