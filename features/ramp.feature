@ramp
Feature: Ramp-up versus burst at start
  A burst of users at t=0 piles up in prefill and inflates TTFT; ramping users up avoids it.

  Scenario: Ramping up keeps the start-up TTFT lower than a burst
    Given a local P/D deployment with 1 prefill and 1 decode node
    And a load of 24 concurrent users
    And requests ask for at most 4 tokens
    And every request sends a long prompt with a unique prefix
    When the load runs for 1s as "burst"
    Given the users ramp up 2 at a time every 100ms
    When the load runs for 1s as "ramped"
    Then TTFT p90 of "ramped" is below that of "burst"
