"""The portal: the recipient's side of a secure link, on its own listener (never the reviewer
UI). The recipient opens the link from their email, asks for a one-time code sent to the same
address, enters it, and reads the held message (sanitised), downloads its attachments, and may
reply to the sender through the gateway."""
