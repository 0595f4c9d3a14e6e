@cache
Feature: Prefix cache
  The same data without the unique prefix must hit the prefill cache and show a lower TTFT than
  the same data with a unique prefix per request. Only TTFT matters here: small max_tokens.

  Scenario: A repeated prompt is served from the cache
    Given a local P/D deployment with 1 prefill and 1 decode node
    And a load of 2 concurrent users
    And requests ask for at most 10 tokens
    And every request sends a long prompt with a unique prefix
    When the load runs for 2s as "cold"
    Given every request sends the same long prompt without a unique prefix
    When the load runs for 2s as "warm"
    Then TTFT p50 of "warm" is below that of "cold"
