"""Drives the official AssemblyAI Python SDK's LLMGateway client (assemblyai==1.8.2) against the
local emulator.

usage: gateway_driver.py BASE_URL API_KEY

Runs a chat completion, the same completion with stream=True, and the model list, and prints
one JSON object with what the SDK parsed (its pydantic models validate every response).
"""

import json
import sys

import assemblyai as aai


def main() -> None:
    base_url, api_key = sys.argv[1], sys.argv[2]
    aai.settings.llm_gateway_base_url = base_url
    gateway = aai.LLMGateway(api_key=api_key)
    messages = [{"role": "user", "content": "Say hello to the whole wide world"}]
    report = {}
    completion = gateway.chat.completions.create(model="gpt-5", messages=messages)
    report["chat"] = {
        "content": completion.choices[0].message.content,
        "prompt_tokens": completion.usage.prompt_tokens,
        "completion_tokens": completion.usage.completion_tokens,
        "total_tokens": completion.usage.total_tokens,
    }
    deltas = []
    finish = None
    chunks = 0
    for chunk in gateway.chat.completions.create(
        model="gpt-5", messages=messages, stream=True
    ):
        chunks += 1
        for choice in chunk.choices:
            if choice.delta.content:
                deltas.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    report["stream"] = {"text": "".join(deltas), "chunks": chunks, "finish": finish}
    report["models"] = [m.id for m in gateway.models.list().data]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
